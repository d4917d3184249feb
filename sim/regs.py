"""`make regs`: write the register map as Markdown, JSON and a C header under build/regs/."""

from model.blocks import csr
from model.io import atomic_write_text
from sim.meta import ROOT


def main() -> int:
    out = ROOT / "build" / "regs"
    atomic_write_text(out / "regs.md", csr.to_markdown())
    atomic_write_text(out / "regs.json", csr.to_json())
    atomic_write_text(out / "regs.h", csr.to_c_header())
    print(f"wrote {out}/regs.md, regs.json, regs.h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
