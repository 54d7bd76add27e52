from optequiv.derive.cli import main
import sys
sys.exit(main())
