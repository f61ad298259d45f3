"""Drives the lab's PowerStore facade with Dell's PyPowerStore through every operation the
copy-offload plugin uses, and checks the answers. Run by crates/lab/tests/powerstore_client.rs.

Argument: a JSON object {host, port, username, password, volume, worker_host, esx_iqn, esx_wwpn,
hosts_total}. Prints one JSON object with what the library returned; exits non-zero with the
failed check on stderr.
"""

import json
import sys

from PyPowerStore.powerstore_conn import PowerStoreConn
from PyPowerStore.utils.exception import PowerStoreException


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call, status):
    """The library raises PowerStoreException carrying the HTTP status of the array's refusal."""
    try:
        call()
    except PowerStoreException as error:
        check(error.status_code == str(status), f"refusal status {status}", str(error))
        return str(error)
    check(False, f"expected HTTP {status}")
    return ""


def main():
    cfg = json.loads(sys.argv[1])
    conn = PowerStoreConn(
        username=cfg["username"],
        password=cfg["password"],
        server_ip=cfg["host"],
        port_no=cfg["port"],
        verify=False,
        application_type="copy-offload-conformance",
        timeout=30.0,
    )
    prov = conn.provisioning
    report = {}

    # Login (implicit on the first call) and the array's identity.
    report["version"] = prov.get_array_version()
    check(report["version"] == "4.0.0.0", "software version", report["version"])
    clusters = prov.get_cluster_list()
    check(len(clusters) == 1 and clusters[0]["name"], "one named cluster", clusters)
    report["cluster"] = clusters[0]["name"]
    report["global_id"] = clusters[0]["global_id"]
    auth = prov.client.auth_manager
    check(auth.dell_emc_token and auth.cookie, "session token and cookie", auth.cookie)
    check(auth.idle_timeout == 3600, "idle timeout", auth.idle_timeout)

    # Find the volume (by name, as the plugin does) with its current mapping.
    volumes = prov.get_volume_by_name(cfg["volume"])
    check(len(volumes) == 1, "volume by name", volumes)
    volume = volumes[0]
    check(volume["wwn"].startswith("naa."), "wwn with naa. prefix", volume["wwn"])
    report["volume_id"] = volume["id"]
    report["wwn"] = volume["wwn"]
    report["size"] = volume["size"]
    check(len(volume["hlu_details"]) == 1, "the worker's mapping", volume["hlu_details"])
    worker_id = volume["hlu_details"][0]["host_id"]
    details = prov.get_volume_details(volume["id"])
    check(details["name"] == cfg["volume"], "volume details", details)
    check(prov.get_volume_by_name("csivol-absent") == [], "absent volume", None)

    # Hosts: every page, and the worker by name.
    hosts = prov.get_hosts(all_pages=True)
    check(len(hosts) == cfg["hosts_total"], "all hosts over pages", len(hosts))
    worker = prov.get_host_by_name(cfg["worker_host"])
    check(len(worker) == 1 and worker[0]["id"] == worker_id, "worker host", worker)

    # The ESXi host: created with its iSCSI initiator, then completed with its FC port.
    created = prov.create_host(
        name="xcopy-conformance",
        os_type="ESXi",
        initiators=[{"port_name": cfg["esx_iqn"], "port_type": "iSCSI"}],
        description="PyPowerStore conformance",
    )
    host_id = created["id"]
    prov.add_initiators_to_host(host_id, [{"port_name": cfg["esx_wwpn"], "port_type": "FC"}])
    host = prov.get_host_details(host_id)
    ports = sorted((i["port_name"], i["port_type"]) for i in host["host_initiators"])
    check(
        ports == sorted([(cfg["esx_iqn"], "iSCSI"), (cfg["esx_wwpn"], "FC")]),
        "host initiators",
        ports,
    )
    check(host["os_type"] == "ESXi" and host["host_group_id"] is None, "host details", host)
    report["host_id"] = host_id
    report["duplicate_initiator"] = refused(
        lambda: prov.create_host(
            name="xcopy-other",
            os_type="ESXi",
            initiators=[{"port_name": cfg["esx_iqn"], "port_type": "iSCSI"}],
        ),
        422,
    )

    # Map, list, map again (refused), unmap.
    prov.map_volume_to_host(volume["id"], host_id=host_id)
    mapped = prov.get_host_volume_mapping(volume["id"])
    ours = [m for m in mapped if m["host_id"] == host_id]
    check(len(ours) == 1, "mapping to the ESXi host", mapped)
    report["lun"] = ours[0]["logical_unit_number"]
    report["double_attach"] = refused(lambda: prov.map_volume_to_host(volume["id"], host_id=host_id), 422)
    prov.unmap_volume_from_host(volume["id"], host_id)
    check(
        [m for m in prov.get_host_volume_mapping(volume["id"]) if m["host_id"] == host_id] == [],
        "unmapped from the host",
        None,
    )

    # Host group: grouped hosts attach only through the group.
    group = prov.create_host_group("xcopy-conformance-group", [host_id])
    group_id = group["id"]
    by_name = prov.get_host_group_by_name("xcopy-conformance-group")
    check(by_name[0]["id"] == group_id, "host group by name", by_name)
    check([h["id"] for h in by_name[0]["hosts"]] == [host_id], "host group members", by_name)
    report["grouped_host_attach"] = refused(
        lambda: prov.map_volume_to_host(volume["id"], host_id=host_id), 422
    )
    prov.map_volume_to_host_group(volume["id"], host_group_id=group_id)
    grouped = [m for m in prov.get_host_volume_mapping(volume["id"]) if m["host_group_id"] == group_id]
    check(len(grouped) == 1 and grouped[0]["host_id"] is None, "host group mapping", grouped)
    details = prov.get_host_group_details(group_id)
    check(len(details["mapped_host_groups"]) == 1, "mapped_host_groups", details)
    prov.unmap_volume_from_host_group(volume["id"], group_id)
    prov.remove_hosts_from_host_group(group_id, [host_id])
    prov.delete_host_group(group_id)
    prov.delete_host(host_id)
    report["missing_host"] = refused(lambda: prov.get_host_details(host_id), 404)

    # Logout ends the session.
    auth.logout_session()
    report["logged_out"] = auth.cookie is None
    print(json.dumps(report))


if __name__ == "__main__":
    main()
