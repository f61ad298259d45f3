"""Drives the lab's FlashSystem facade with IBM's own REST client, the `IBMSVCRestApi` class of the
`ibm.storage_virtualize` Ansible collection (the class its modules talk to the array through),
through every operation the copy-offload plugin uses, and checks the answers. Run by
crates/lab/tests/flashsystem_client.rs.

Argument: a JSON object {port, username, password, log, volume, volume_uid, worker_host,
rdm_volume, esx_wwpn, esx_iqn}. Prints one JSON object with what the library returned; exits
non-zero with the failed check on stderr.
"""

import json
import sys

from ansible_collections.ibm.storage_virtualize.plugins.module_utils.ibm_svc_utils import (
    IBMSVCRestApi,
)


class Refused(Exception):
    """What the collection's modules see as `fail_json` / `exit_json`."""


class Module:
    """The slice of AnsibleModule the REST client uses."""

    def jsonify(self, data):
        return json.dumps(data)

    def fail_json(self, **kwargs):
        raise Refused(kwargs)

    def exit_json(self, **kwargs):
        raise Refused(kwargs)


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call):
    """The CLI message of a refused command (the client reports the raw HTTP error body)."""
    try:
        call()
    except Refused as error:
        msg = error.args[0]["msg"]
        out = msg["out"]
        return {"code": msg["code"], "message": out.decode() if isinstance(out, bytes) else out}
    check(False, "expected the array to refuse")
    return {}


def main():
    cfg = json.loads(sys.argv[1])

    class LabRestApi(IBMSVCRestApi):
        _port = str(cfg["port"])

    # Login: POST /rest/auth with X-Auth-Username / X-Auth-Password, then registerplugin.
    api = LabRestApi(
        module=Module(),
        clustername="127.0.0.1",
        domain=None,
        username=cfg["username"],
        password=cfg["password"],
        validate_certs=False,
        log_path=cfg["log"],
        token=None,
    )
    report = {"token": bool(api.token)}

    system = api.svc_obj_info("lssystem", None, None)
    report["product_name"] = system["product_name"]
    report["code_level"] = system["code_level"]
    report["vdisk_protection_enabled"] = system["vdisk_protection_enabled"]

    # Find the volume by vdisk_UID, as the plugin does.
    found = api.svc_obj_info(
        "lsvdisk", {"filtervalue": "vdisk_UID=" + cfg["volume_uid"], "bytes": True}, None
    )
    check(isinstance(found, list) and len(found) == 1, "vdisk by UID", found)
    vdisk = found[0]
    report["vdisk_id"] = vdisk["id"]
    report["vdisk_name"] = vdisk["name"]
    report["capacity"] = vdisk["capacity"]
    report["pool"] = vdisk["mdisk_grp_name"]
    pool = api.svc_obj_info("lsmdiskgrp", None, [vdisk["mdisk_grp_name"]])
    report["pool_protection"] = pool["vdisk_protection_enabled"]
    check(api.svc_obj_info("lsvdisk", None, ["no-such-vdisk"]) is None, "a missing object")

    # The original maps.
    maps = api.svc_obj_info("lsvdiskhostmap", None, [vdisk["name"]])
    report["original_hosts"] = [m["host_name"] for m in maps]

    # Hosts: the listing, a new host with both port kinds (as ibm_svc_host creates one), its ports.
    hosts = api.svc_obj_info("lshost", None, None)
    report["hosts_before"] = [h["name"] for h in hosts]
    created = api.svc_run_command(
        "mkhost",
        {
            "name": "xcopy-conformance",
            "force": True,
            "fcwwpn": cfg["esx_wwpn"],
            "iscsiname": cfg["esx_iqn"],
            "protocol": "scsi",
            "type": "generic",
        },
        None,
    )
    check("message" in created and created["id"], "mkhost answer", created)
    detail = api.svc_obj_info("lshost", None, ["-gui", "xcopy-conformance"])
    report["wwpns"] = [n["WWPN"] for n in detail["nodes"] if "WWPN" in n]
    report["iscsi_names"] = [n["iscsi_name"] for n in detail["nodes"] if "iscsi_name" in n]
    report["duplicate_port"] = refused(
        lambda: api.svc_run_command(
            "mkhost", {"name": "other", "force": True, "iscsiname": cfg["esx_iqn"]}, None
        )
    )

    # Map (as ibm_svc_vol_map does: force, scsi possibly null), the maps both ways, map again.
    mapped = api.svc_run_command(
        "mkvdiskhostmap", {"force": True, "host": "xcopy-conformance", "scsi": None}, [vdisk["name"]]
    )
    check("message" in mapped, "mkvdiskhostmap answer", mapped)
    report["scsi_id"] = mapped["id"]
    maps = api.svc_obj_info("lsvdiskhostmap", None, [vdisk["name"]])
    report["mapped_hosts"] = sorted(m["host_name"] for m in maps)
    by_host = api.svc_obj_info("lshostvdiskmap", None, ["xcopy-conformance"])
    report["host_vdisks"] = [m["vdisk_name"] for m in by_host]
    report["double_map"] = refused(
        lambda: api.svc_run_command(
            "mkvdiskhostmap", {"force": True, "host": "xcopy-conformance"}, [vdisk["name"]]
        )
    )
    api.svc_run_command("rmvdiskhostmap", {"host": "xcopy-conformance"}, [vdisk["name"]])
    maps = api.svc_obj_info("lsvdiskhostmap", None, [vdisk["name"]])
    report["hosts_after_unmap"] = [m["host_name"] for m in maps]
    api.svc_run_command("rmhost", {}, ["xcopy-conformance"])
    check(api.svc_obj_info("lshost", None, ["xcopy-conformance"]) is None, "host removed")

    # FlashCopy from the RDM vdisk onto the volume, followed until copied, then removed.
    fc = api.svc_run_command(
        "mkfcmap",
        {"name": "xcopy-copy-conf", "source": cfg["rdm_volume"], "target": vdisk["name"],
         "copyrate": 100},
        None,
    )
    check("message" in fc, "mkfcmap answer", fc)
    api.svc_run_command("startfcmap", {"prep": True}, ["xcopy-copy-conf"])
    progress = []
    for _ in range(20):
        fcmap = api.svc_obj_info("lsfcmap", None, ["xcopy-copy-conf"])
        progress.append(int(fcmap["progress"]))
        if fcmap["status"] == "idle_or_copied":
            break
        check(fcmap["status"] == "copying", "copying", fcmap)
    report["progress"] = progress
    listed = api.svc_obj_info("lsfcmap", {"filtervalue": "name=xcopy-copy-conf"}, None)
    report["fcmap_source"] = listed[0]["source_vdisk_name"]
    api.svc_run_command("rmfcmap", {}, ["xcopy-copy-conf"])
    check(api.svc_obj_info("lsfcmap", None, ["xcopy-copy-conf"]) is None, "fcmap removed")

    print(json.dumps(report))


if __name__ == "__main__":
    main()
