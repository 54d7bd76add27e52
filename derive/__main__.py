from derive.cli import main
import sys
sys.exit(main())
