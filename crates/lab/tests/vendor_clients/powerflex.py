"""Drives the lab's PowerFlex gateway facade with Dell's PyPowerFlex through every operation the
copy-offload plugin uses, and checks the answers. Run by crates/lab/tests/powerflex_client.rs.

Argument: a JSON object {host, port, username, password, system_id, volume, esx_guid,
worker_sdc}. Prints one JSON object with what the library returned; exits non-zero with the
failed check on stderr.
"""

import json
import sys

from PyPowerFlex import PowerFlexClient
from PyPowerFlex.exceptions import PowerFlexClientException


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call):
    """The library raises PowerFlexClientException carrying the gateway's error body."""
    try:
        call()
    except PowerFlexClientException as error:
        return str(error)
    check(False, "expected a refusal")
    return ""


def main():
    cfg = json.loads(sys.argv[1])
    report = {}

    # Wrong credentials: the library's login fails.
    bad = PowerFlexClient(cfg["host"], cfg["port"], cfg["username"], "wrong", verify_certificate=False)
    try:
        bad.initialize()
        check(False, "a wrong password was accepted")
    except Exception as error:  # the library raises a bare Exception for a failed login
        report["wrong_password"] = str(error)

    # Login (on every call), the API version and the system.
    client = PowerFlexClient(cfg["host"], cfg["port"], cfg["username"], cfg["password"],
                             verify_certificate=False, timeout=30)
    client.initialize()
    report["api_version"] = client.system.api_version()
    systems = client.system.get()
    check(len(systems) == 1, "one system", systems)
    report["system_id"] = systems[0]["id"]

    # The ESXi host's SDC by GUID, through the system's relationship and the Sdc type.
    related = client.system.get_related(cfg["system_id"], "Sdc")
    by_guid = [s for s in related if s["sdcGuid"].lower() == cfg["esx_guid"].lower()]
    check(len(by_guid) == 1, "the ESXi SDC among the system's SDCs", related)
    esx = by_guid[0]
    check(esx["osType"] == "Esx", "ESXi SDC os type", esx)
    same = client.sdc.get(filter_fields={"sdcGuid": esx["sdcGuid"]})
    check([s["id"] for s in same] == [esx["id"]], "Sdc type filtered by GUID", same)
    report["esx_sdc"] = esx["id"]

    # The volume by name, then by id with its mappings (the worker node's).
    volumes = client.volume.get(filter_fields={"name": cfg["volume"]})
    check(len(volumes) == 1, "the volume by name", volumes)
    volume_id = volumes[0]["id"]
    report["volume_id"] = volume_id
    volume = client.volume.get(entity_id=volume_id)
    report["size_in_kb"] = volume["sizeInKb"]
    report["mapped_before"] = [m["sdcId"] for m in volume["mappedSdcInfo"] or []]

    # Map to the ESXi SDC next to the worker's mapping; twice is refused.
    mapped = client.volume.add_mapped_sdc(volume_id, sdc_id=esx["id"], allow_multiple_mappings=True)
    report["mapped_during"] = sorted(m["sdcId"] for m in mapped["mappedSdcInfo"])
    report["double_map"] = refused(
        lambda: client.volume.add_mapped_sdc(volume_id, sdc_id=esx["id"], allow_multiple_mappings=True))
    on_esx = client.sdc.get_mapped_volumes(esx["id"])
    check([v["id"] for v in on_esx] == [volume_id], "volumes mapped to the ESXi SDC", on_esx)

    # Unmap the ESXi SDC only; unmapping again is refused.
    unmapped = client.volume.remove_mapped_sdc(volume_id, sdc_id=esx["id"])
    report["mapped_after"] = [m["sdcId"] for m in unmapped["mappedSdcInfo"] or []]
    report["double_unmap"] = refused(lambda: client.volume.remove_mapped_sdc(volume_id, sdc_id=esx["id"]))
    # Every request above ended with the library's own logout, which the gateway accepted.
    report["logged_out"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
