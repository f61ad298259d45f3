#!/usr/bin/env python3
"""Renders the README's vendor table from what the test suite proved.

Tests record each cell they prove (crates/testpeers/src/vendor_matrix.rs) under
$COPY_OFFLOAD_VENDOR_MATRIX_DIR/<storageVendorProduct>/<cell>. scripts/test.sh runs this after a
whole-suite run:

    scripts/vendor_matrix.py check  <records dir> README.md   # fails when the README differs
    scripts/vendor_matrix.py update <records dir> README.md   # rewrites the table in place
    scripts/vendor_matrix.py render <records dir>              # prints the table

The table sits between the `<!-- vendor-matrix:begin -->` and `<!-- vendor-matrix:end -->` lines.
"""

import difflib
import os
import sys

BEGIN = "<!-- vendor-matrix:begin -->"
END = "<!-- vendor-matrix:end -->"

# storageVendorProduct, name shown, whether the vendor publishes an API definition we check against
VENDORS = [
    ("ontap", "NetApp ONTAP", True),
    ("pureFlashArray", "Pure FlashArray", True),
    ("powerstore", "Dell PowerStore", True),
    ("flashsystem", "IBM FlashSystem", False),
    ("powermax", "Dell PowerMax", False),
    ("powerflex", "Dell PowerFlex", False),
    ("infinibox", "Infinidat InfiniBox", False),
    ("vantara", "Hitachi Vantara", False),
    ("primera3par", "HPE Primera/3PAR", False),
]

FAULTS = [
    "fault-session-expired",
    "fault-busy",
    "fault-unreachable",
    "fault-wrong-credentials",
    "fault-sigterm",
    "fault-sigkill",
]

NOT_PROVEN = "—"


def read(records, product, key):
    try:
        with open(os.path.join(records, product, key), encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def render(records):
    rows = [
        "| Vendor | VMDK (VIB) | VMDK (SSH) | RDM | vVol | Contract | Vendor client | Faults |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for product, name, has_definition in VENDORS:
        cell = lambda key: read(records, product, key) or NOT_PROVEN  # noqa: E731
        contract = cell("contract")
        if contract == NOT_PROVEN and not has_definition:
            contract = "no definition"
        faults = sum(1 for key in FAULTS if read(records, product, key))
        if faults == len(FAULTS):
            faults_cell = "✓"
        elif faults == 0:
            faults_cell = NOT_PROVEN
        else:
            faults_cell = f"{faults}/{len(FAULTS)}"
        rows.append(
            f"| {name} (`{product}`) | {cell('vmdk-vib')} | {cell('vmdk-ssh')} | {cell('rdm')} "
            f"| {cell('vvol')} | {contract} | {cell('vendor-client')} | {faults_cell} |"
        )
    return "\n".join(rows) + "\n"


def split(readme):
    begin = readme.find(BEGIN)
    end = readme.find(END)
    if begin < 0 or end < begin:
        sys.exit(f"vendor_matrix: the README has no {BEGIN} ... {END} block")
    start = readme.index("\n", begin) + 1
    return readme[:start], readme[start:end], readme[end:]


def main(argv):
    if len(argv) < 2 or argv[0] not in ("check", "update", "render"):
        sys.exit(__doc__)
    command, records = argv[0], argv[1]
    table = render(records)
    if command == "render":
        sys.stdout.write(table)
        return
    if len(argv) != 3:
        sys.exit(__doc__)
    path = argv[2]
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    head, current, tail = split(readme)
    if current == table:
        return
    if command == "update":
        with open(path, "w", encoding="utf-8") as f:
            f.write(head + table + tail)
        print(f"vendor_matrix: {path} updated", file=sys.stderr)
        return
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        table.splitlines(keepends=True),
        "README (as committed)",
        "this run of the test suite",
    )
    sys.stderr.write("".join(diff))
    sys.exit(
        "vendor_matrix: the README's vendor table is not what this run of the tests proved; "
        "re-run with COPY_OFFLOAD_VENDOR_MATRIX_UPDATE=1 scripts/test.sh to rewrite it, "
        "and commit the result"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
