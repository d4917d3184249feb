"""The register map definition and what is generated from it."""

import json
import shutil
import subprocess

import pytest

from model.blocks import csr


def test_addresses_unique_aligned_and_fields_fit():
    addrs = [r.addr for r in csr.REGS]
    assert len(set(addrs)) == len(addrs)
    assert all(a % 4 == 0 and 0 <= a < 256 for a in addrs)
    for r in csr.REGS:
        used = 0
        for f in r.fields:
            mask = ((1 << f.width) - 1) << f.lsb
            assert f.lsb + f.width <= 32, (r.name, f.name)
            assert used & mask == 0, f"{r.name}.{f.name} overlaps another field"
            used |= mask


def test_pack_unpack_round_trip_and_errors():
    w = csr.pack("CTRL", enable=1, reseed=1)
    assert csr.unpack("CTRL", w) == {"enable": 1, "cal_enable": 0, "reseed": 1, "clear_alarms": 0}
    with pytest.raises(ValueError, match="CTRL.enable = 2"):
        csr.pack("CTRL", enable=2)
    with pytest.raises(ValueError, match="NOPE"):
        csr.addr("NOPE")


def test_generated_views_agree(tmp_path):
    md = csr.to_markdown()
    js = json.loads(csr.to_json())
    for r in csr.REGS:
        assert f"| 0x{r.addr:02x} | {r.name} |" in md
    assert [r["addr"] for r in js["registers"]] == [r.addr for r in csr.REGS]
    hdr = tmp_path / "regs.h"
    hdr.write_text(csr.to_c_header())
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to check the header")
    prog = tmp_path / "t.c"
    prog.write_text('#include "regs.h"\n'
                    + "".join(f"_Static_assert(SPINDIFF_{r.name}_ADDR == {r.addr}u, \"{r.name}\");\n"
                              for r in csr.REGS) + "int main(void){return 0;}\n")
    subprocess.run([cc, "-fsyntax-only", "-I", str(tmp_path), str(prog)], check=True)
