"""Drives the lab's Primera/3PAR WSAPI facade with HPE's python-3parclient (hpe3parclient) through
every operation the copy-offload plugin uses, and checks the answers. Run by
crates/lab/tests/primera3par_client.rs.

Argument: a JSON object {url, username, password, volume, worker_host, admin_host, admin_wwn,
esx_iqn, esx_wwn, host, host_set, source, spare}. Prints one JSON object with what the library returned; exits
non-zero with the failed check on stderr.
"""

import json
import sys

from hpe3parclient import client as hpeclient
from hpe3parclient import exceptions


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call, kind):
    """The library raises the exception class of the HTTP status, carrying the WSAPI code."""
    try:
        call()
    except kind as error:
        check(isinstance(error.get_code(), int), "a numeric WSAPI code", error.get_code())
        check(bool(error.get_description()), "a WSAPI desc", str(error))
        return {"code": error.get_code(), "desc": error.get_description()}
    check(False, f"expected {kind.__name__}")
    return {}


def main():
    cfg = json.loads(sys.argv[1])
    seen = {}
    cl = hpeclient.HPE3ParClient(cfg["url"])

    # Sessions: wrong credentials are refused; the right ones give a key the library sends.
    seen["wrong_login"] = refused(
        lambda: cl.login(cfg["username"], "not-the-password"), exceptions.HTTPForbidden
    )
    cl.login(cfg["username"], cfg["password"])
    check(bool(cl.get_session_key()), "a session key")
    version = cl.getWsApiVersion()
    seen["build"] = version["build"]
    seen["is_primera"] = cl.is_primera_array()
    system = cl.getStorageSystemInfo()
    seen["system"] = {k: system.get(k) for k in ("name", "model", "systemVersion")}

    # The volume by name and by wwn; a missing one is 404.
    volume = cl.getVolume(cfg["volume"])
    seen["volume"] = {k: volume.get(k) for k in ("name", "wwn", "sizeMiB", "copyType")}
    seen["missing_volume"] = refused(lambda: cl.getVolume("no-such-volume"), exceptions.HTTPNotFound)

    # Hosts by path: the administrator's FC host is found; the ESXi iSCSI name is on no host.
    by_wwn = cl.queryHost(wwns=[cfg["admin_wwn"]])
    seen["query_by_wwn"] = [h["name"] for h in by_wwn["members"]]
    by_iqn = cl.queryHost(iqns=[cfg["esx_iqn"]])
    seen["query_by_iqn"] = [h["name"] for h in by_iqn["members"]]

    # Our host with persona VMware, a path added later; a path belongs to one host only.
    host = cl.createHost(
        cfg["host"],
        iscsiNames=[cfg["esx_iqn"]],
        optional={"persona": cl.HOST_PERSONA_VMWARE, "descriptors": {"comment": "copy-offload"}},
    )
    seen["created_host"] = {
        "name": host["name"],
        "persona": host["persona"],
        "iscsi": [p["name"] for p in host["iSCSIPaths"]],
    }
    cl.modifyHost(cfg["host"], {"pathOperation": cl.HOST_EDIT_ADD, "FCWWNs": [cfg["esx_wwn"]]})
    seen["host_wwns"] = [p["wwn"] for p in cl.getHost(cfg["host"])["FCPaths"]]
    seen["duplicate_path"] = refused(
        lambda: cl.createHost("xcopy-dup", iscsiNames=[cfg["esx_iqn"]]), exceptions.HTTPConflict
    )
    seen["long_host_name"] = refused(
        lambda: cl.createHost("h" * 32, iscsiNames=["iqn.2000-01.io.lab:long"]),
        exceptions.HTTPBadRequest,
    )

    # The host set with our host, the administrator's host added; twice is refused.
    seen["host_set_id"] = cl.createHostSet(cfg["host_set"], comment="copy-offload", setmembers=[cfg["host"]])
    cl.addHostToHostSet(cfg["host_set"], cfg["admin_host"])
    seen["double_member"] = refused(
        lambda: cl.addHostToHostSet(cfg["host_set"], cfg["admin_host"]), exceptions.HTTPConflict
    )
    seen["set_members"] = cl.getHostSet(cfg["host_set"])["setmembers"]
    seen["found_set"] = cl.findHostSet(cfg["admin_host"])

    # Export to the set at an automatic LUN; twice is refused; the VLUNs of the volume.
    location = cl.createVLUN(cfg["volume"], hostname="set:" + cfg["host_set"], auto=True)
    seen["vlun_location"] = location
    seen["double_export"] = refused(
        lambda: cl.createVLUN(cfg["volume"], hostname="set:" + cfg["host_set"], auto=True),
        exceptions.HTTPConflict,
    )
    vluns = cl.getVLUN(cfg["volume"], allVluns=True)
    seen["vluns"] = sorted((v["hostname"], v["lun"], v["type"]) for v in vluns)
    seen["worker_vluns"] = [v["volumeName"] for v in cl.getHostVLUNs(cfg["worker_host"])]
    seen["set_in_use"] = refused(lambda: cl.deleteHostSet(cfg["host_set"]), exceptions.HTTPConflict)
    seen["host_in_set"] = refused(lambda: cl.deleteHost(cfg["host"]), exceptions.HTTPConflict)

    # Taken apart: the export, the set, our host.
    lun = int(location.split(",")[1])
    cl.deleteVLUN(cfg["volume"], lun, "set:" + cfg["host_set"])
    seen["missing_vlun"] = refused(
        lambda: cl.deleteVLUN(cfg["volume"], lun, "set:" + cfg["host_set"]), exceptions.HTTPNotFound
    )
    cl.removeHostFromHostSet(cfg["host_set"], cfg["admin_host"])
    cl.deleteHostSet(cfg["host_set"])
    cl.deleteHost(cfg["host"])
    seen["missing_host"] = refused(lambda: cl.getHost(cfg["host"]), exceptions.HTTPNotFound)

    # Copies: an offline physical copy onto the exported volume is refused; onto an unexported one
    # it runs as a task. An online copy creates a new volume. A snapshot lists under its parent,
    # and promoting it writes the parent.
    seen["copy_onto_exported"] = refused(
        lambda: cl.copyVolume(cfg["source"], cfg["volume"], None), exceptions.HTTPForbidden
    )
    offline = cl.copyVolume(cfg["source"], cfg["spare"], None)
    seen["offline_task"] = cl.getTask(offline["taskid"])
    online = cl.copyVolume(
        cfg["source"], "xcopy-online-copy", "SSD_r6", {"online": True, "tpvv": True}
    )
    seen["online_task"] = cl.getTask(online["taskid"])
    seen["online_still_copying"] = cl.isOnlinePhysicalCopy("xcopy-online-copy")
    seen["online_copy_size"] = cl.getVolume("xcopy-online-copy")["sizeMiB"]
    cl.deleteVolume("xcopy-online-copy")
    cl.createSnapshot("xcopy-snap", cfg["source"], {"readOnly": False})
    seen["snapshots"] = cl.getVolumeSnapshots(cfg["source"])
    seen["promote"] = cl.promoteVirtualCopy("xcopy-snap")
    seen["parent_with_child"] = refused(
        lambda: cl.deleteVolume(cfg["source"]), exceptions.HTTPConflict
    )
    cl.deleteVolume("xcopy-snap")
    seen["snapshots_after"] = cl.getVolumeSnapshots(cfg["source"])
    seen["delete_exported"] = refused(
        lambda: cl.deleteVolume(cfg["volume"]), exceptions.HTTPConflict
    )

    cl.logout()
    seen["logged_out"] = cl.get_session_key() is None
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
