"""Drives the lab's InfiniBox facade with Infinidat's InfiniSDK through every operation the
copy-offload plugin uses, and checks the answers. Run by crates/lab/tests/infinibox_client.rs.

Argument: a JSON object {host, port, username, password, volume, worker_host, esx_iqn, esx_wwpn,
hosts_total, cluster, cluster_member}. Prints one JSON object with what the library returned;
exits non-zero with the failed check on stderr.
"""

import json
import sys

from infi.dtypes.iqn import make_iscsi_name
from infinisdk import InfiniBox
from infinisdk.core.exceptions import APICommandFailed


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call, status):
    """The library raises APICommandFailed carrying the HTTP status and the array's error code."""
    try:
        call()
    except APICommandFailed as error:
        check(error.status_code == status, f"refusal status {status}", repr(error))
        return f"{error.status_code} {error.error_code}"
    check(False, f"expected HTTP {status}")
    return ""


def main():
    cfg = json.loads(sys.argv[1])
    system = InfiniBox(
        (cfg["host"], cfg["port"]),
        auth=(cfg["username"], cfg["password"]),
        use_ssl=True,
    )
    report = {}

    # Login: the library checks the version, reads the features and opens a session.
    system.login()
    check(system.compat.has_auth_sessions(), "session feature")
    check(bool(system.api._session.cookies), "session cookie set by the login")
    report["version"] = system.get_version()
    report["serial_number"] = system.get_serial()
    report["name"] = system.get_name()

    # The volume by name, as the plugin finds it, with its serial and current mapping.
    volume = system.volumes.get(name=cfg["volume"])
    report["volume_id"] = volume.id
    serial = volume.get_serial()
    report["serial"] = str(serial)
    check(serial.ieee_company_id == 0x742B0F, "Infinidat OUI in the serial", str(serial))
    report["size"] = volume.get_field("size", raw_value=True)
    mapped = [lu for lu in system.get_luns() if lu.volume_id == volume.id]
    report["original_hosts"] = sorted(
        lu.get_mapping_object().get_name() for lu in mapped
    )

    # Every page of hosts: more than one page of the array's default size.
    hosts = system.hosts.to_list()
    report["hosts_total"] = len(hosts)
    worker = system.hosts.get(name=cfg["worker_host"])
    check(worker.is_volume_mapped(volume), "the worker host has the volume")

    # A host of our own with the ESXi ports, tagged with metadata.
    esx = system.hosts.create(name="xcopy-conformance", host_type="esxi")
    esx.add_port(cfg["esx_wwpn"])
    esx.add_port(make_iscsi_name(cfg["esx_iqn"]))
    ports = sorted(str(p) for p in esx.get_ports())
    report["ports"] = ports
    report["host_by_port"] = system.hosts.get_host_id_by_initiator_address(
        cfg["esx_wwpn"]
    )
    check(report["host_by_port"] == esx.id, "host found by its port", report["host_by_port"])
    report["duplicate_port"] = refused(
        lambda: worker.add_port(cfg["esx_wwpn"]), 409
    )
    esx.set_metadata("created_by", "copy-offload")
    report["metadata"] = esx.get_all_metadata()

    # Map, map again (refused), list, unmap.
    lu = esx.map_volume(volume)
    report["lun"] = int(lu)
    report["double_map"] = refused(lambda: esx.map_volume(volume), 409)
    check(esx.is_volume_mapped(volume), "mapped to the ESXi host")
    volume_luns = system.api.get(f"volumes/{volume.id}/luns").get_result()
    report["volume_luns"] = sorted(
        (entry["host_id"] or 0, entry["lun"]) for entry in volume_luns
    )
    esx.unmap_volume(volume)
    check(not esx.is_volume_mapped(volume), "unmapped from the ESXi host")

    # A host cluster's mapping shows on its members as clustered.
    cluster = system.host_clusters.get(name=cfg["cluster"])
    member = system.hosts.get(name=cfg["cluster_member"])
    check(member.get_cluster() == cluster, "member's cluster", member.get_cluster())
    clustered = cluster.map_volume(volume)
    check(clustered.is_clustered(), "a cluster LUN is clustered")
    member_luns = member.get_luns(from_cache=False)
    check(
        any(lu.is_clustered() and lu.volume_id == volume.id for lu in member_luns),
        "the member sees the cluster's LUN",
        [repr(lu) for lu in member_luns],
    )
    cluster.unmap_volume(volume)

    # Our host goes, with its metadata.
    esx.remove_port(cfg["esx_wwpn"])
    esx.delete()
    check(system.hosts.safe_get(name="xcopy-conformance") is None, "host deleted")

    system.logout()
    report["logged_out"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
