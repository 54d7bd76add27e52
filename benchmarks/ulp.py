"""The float32 table of `optequiv bench`: how far each generated optimizer is from torch's CPU
loop, in ulp, over torch's own test configurations (numeric.optim_db.ulp_figures measures it).
A distance, not a time: bit for bit (0 ulp) is the goal for the default path."""
from __future__ import annotations

from optequiv.derive.errors import UserError


def ulp_rows(quick: bool = False) -> list:
    from optequiv.numeric.optim_db import STEPS, ulp_figures

    try:
        return ulp_figures(steps=STEPS // 2 if quick else STEPS)
    except UserError as error:  # expecttest missing: said in the table, the rest still runs
        return [{"case": "ulp", "not_measured": str(error)}]


def ulp_section(rows: list) -> str:
    lines = ["", "## float32 distance to torch's CPU loop (torch's optim_db configurations)", ""]
    missing = [r["not_measured"] for r in rows if "not_measured" in r]
    if missing or not rows:
        return "\n".join(lines + [f"Not measured: {missing[0] if missing else 'no rows'}."]) + "\n"
    lines += [f"Every configuration of torch's optim_db on the CPU that the generated optimizer "
              f"accepts, {rows[0]['steps']} steps, every parameter and state entry after every "
              "step. max ulp is elementwise (large where an entry near 0 is the difference of "
              "larger terms); normwise error is in float32 eps.", "",
              "| optimizer | ours | configurations | within tolerance | max ulp | normwise eps "
              "| where |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = "default" if r["implementation"] == "loop" else r["implementation"]
        lines.append(f"| {r['optimizer']} | {ours} | {r['configurations']} | "
                     f"{r['within_tolerance']} | {r['max_ulp']:.0f} | "
                     f"{r['max_rel_error_eps']:.2f} | {r['max_ulp_at'] or 'bit for bit'} |")
    return "\n".join(lines) + "\n"
