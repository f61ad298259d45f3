"""Drives the lab's PowerMax Unisphere facade with Dell's PyU4V through every operation the
copy-offload plugin uses, and checks the answers. Run by crates/lab/tests/powermax_client.rs.

Argument: a JSON object {host, port, username, password, array_id, port_group, device, volume,
worker_view, esx_iqn, volumes_total}. Prints one JSON object with what the library returned;
exits non-zero with the failed check on stderr.
"""

import json
import sys

import PyU4V
from PyU4V.utils import exception


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call, status):
    """PyU4V raises VolumeBackendAPIException naming the HTTP status of the array's refusal."""
    try:
        call()
    except exception.VolumeBackendAPIException as error:
        text = str(error)
        check(f"status code received is {status}" in text, f"refusal status {status}", text)
        return text
    check(False, f"expected HTTP {status}")
    return ""


def main():
    cfg = json.loads(sys.argv[1])
    # The API version copy-offload speaks; the library's default (its own newest) is checked below.
    conn = PyU4V.U4VConn(
        username=cfg["username"],
        password=cfg["password"],
        server_ip=cfg["host"],
        port=cfg["port"],
        verify=False,
        u4v_version="100",
        array_id=cfg["array_id"],
        interval=1,
        retries=5,
        application_type="copy-offload-conformance",
    )
    prov = conn.provisioning
    report = {}

    # The authentication check and the array's identity.
    version, major = conn.common.get_uni_version()
    report["version"] = version
    check(major == "104", "major version", major)
    info = conn.common.get_uni_version_info()
    check("100" in info["supported_api_versions"], "API 100 served", info)
    array = conn.common.get_array(cfg["array_id"])
    report["model"] = array["model"]
    report["ucode"] = array["ucode"]
    check(conn.common.get_array_list() == [cfg["array_id"]], "one array", None)

    # The port group and its protocol.
    port_group = prov.get_port_group(cfg["port_group"])
    report["port_group_protocol"] = port_group["port_group_protocol"]

    # The volume by device id, its storage groups, and the volume list through the iterator.
    volume = prov.get_volume(cfg["device"])
    report["wwn"] = volume["wwn"]
    report["volume_identifier"] = volume["volume_identifier"]
    report["cap_gb"] = volume["cap_gb"]
    report["original_groups"] = volume["storageGroupId"]
    every = prov.get_volume_list()
    check(len(every) == cfg["volumes_total"], "every volume through the iterator", every)
    check(cfg["device"] in every, "the volume is listed", every)
    worker_sg = volume["storageGroupId"][0]
    report["worker_views"] = prov.get_masking_views_from_storage_group(worker_sg)

    # The ESXi initiator: logged in, in no host yet.
    ids = prov.get_initiator_list({"initiator_hba": cfg["esx_iqn"]})
    check(len(ids) == 1, "initiator by hba", ids)
    report["initiator_id"] = ids[0]
    check(prov.get_initiator_group_from_initiator(ids[0]) is None, "no host yet")
    check(ids[0] not in prov.get_in_use_initiator_list_from_array(), "not in use")

    # A host for it.
    host = prov.create_host("xcopy-conformance", initiator_list=[cfg["esx_iqn"]])
    check(host["hostId"] == "xcopy-conformance", "created host", host)
    check(prov.get_initiator_group_from_initiator(ids[0]) == "xcopy-conformance", "host of initiator")
    report["host_initiators"] = prov.get_initiator_ids_from_host("xcopy-conformance")
    refused(lambda: prov.create_host("xcopy-other", initiator_list=[cfg["esx_iqn"]]), 400)

    # Storage group with the volume, masking view, LUN.
    sg = "xcopy-conformance-SG"
    mv = "xcopy-conformance-MV"
    prov.create_storage_group(None, sg)
    prov.add_existing_volume_to_storage_group(sg, cfg["device"])
    check(cfg["device"] in prov.get_volume_list({"storageGroupId": sg}), "volume in group")
    prov.create_masking_view_existing_components(cfg["port_group"], mv, sg, host_name="xcopy-conformance")
    view = prov.get_masking_view(mv)
    check(view["hostId"] == "xcopy-conformance" and view["storageGroupId"] == sg, "view", view)
    check(prov.get_masking_views_from_storage_group(sg) == [mv], "view of group")
    report["lun"] = prov.find_host_lun_id_for_volume(mv, cfg["device"])
    groups = prov.get_volume(cfg["device"])["storageGroupId"]
    check(sorted(groups) == sorted([worker_sg, sg]), "volume in both groups", groups)

    # The array's refusals.
    report["last_volume"] = refused(
        lambda: prov.remove_volume_from_storage_group(sg, cfg["device"]), 400)
    report["group_in_view"] = refused(lambda: prov.delete_storage_group(sg), 400)
    report["host_in_view"] = refused(lambda: prov.delete_host("xcopy-conformance"), 400)
    try:
        prov.get_masking_view("xcopy-missing-MV")
        check(False, "unknown view")
    except exception.ResourceNotFoundException as error:
        report["missing"] = str(error)

    # Unmap: view, volume, group, host.
    prov.delete_masking_view(mv)
    prov.remove_volume_from_storage_group(sg, cfg["device"])
    prov.delete_storage_group(sg)
    prov.delete_host("xcopy-conformance")
    check(prov.get_volume(cfg["device"])["storageGroupId"] == [worker_sg], "back to the worker only")

    # An asynchronous change answers a job the library waits for.
    job = prov.create_storage_group(None, "xcopy-conformance-async", _async=True)
    conn.common.wait_for_job("create storage group", 202, job)
    check("xcopy-conformance-async" in prov.get_storage_group_list(), "async group exists")
    prov.delete_storage_group("xcopy-conformance-async")

    # The library's own newest API version is served too.
    newest = PyU4V.U4VConn(
        username=cfg["username"], password=cfg["password"], server_ip=cfg["host"],
        port=cfg["port"], verify=False, array_id=cfg["array_id"])
    report["newest_wwn"] = newest.provisioning.get_volume(cfg["device"])["wwn"]
    newest.close_session()

    conn.close_session()
    report["closed"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
