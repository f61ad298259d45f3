"""Drives the lab's Vantara facade with Hitachi's own Configuration Manager REST layer, the
gateways of the `hitachivantara.vspone_block` Ansible collection (`VSPConnectionManager`, its
`SessionManager`, and the host group, iSCSI target, volume and Thin Image snapshot gateways its
modules call), through
every operation the copy-offload plugin uses, and checks the answers. Run by
crates/lab/tests/vantara_client.rs.

Argument: a JSON object {address, username, password, ldev, clone_target_ldev, snapshot_ldev,
fc_port, fc_group, iscsi_port, iscsi_group}. Prints one JSON object with what the library returned; exits non-zero
with the failed check on stderr.
"""

import json
import sys

from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.gateway.gateway_manager import (
    VSPConnectionManager,
)
from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.gateway.vsp_host_group_gateway import (
    VSPHostGroupDirectGateway,
)
from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.gateway.vsp_iscsi_target_gateway import (
    VSPIscsiTargetDirectGateway,
)
from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.gateway.vsp_snapshot_gateway import (
    VSPHtiSnapshotDirectGateway,
)
from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.gateway.vsp_volume import (
    VSPVolumeDirectGateway,
)
from ansible_collections.hitachivantara.vspone_block.plugins.module_utils.model.common_base_models import (
    ConnectionInfo,
)


def check(condition, what, value=None):
    if not condition:
        sys.stderr.write(f"check failed: {what}: {value!r}\n")
        sys.exit(1)


def refused(call):
    """The array's message for a refused request (the library raises it as an Exception)."""
    try:
        call()
    except Exception as error:  # the collection raises bare Exceptions
        return str(error)
    check(False, "expected the array to refuse")
    return ""


def create_pair(snapshots, pvol, group, svol, is_clone, mu, copy_speed):
    """A Thin Image pair in pool 0 as the collection's snapshot module creates one; answers the
    `<pvol>,<mu>` the job reports."""
    return snapshots.create_snapshot(
        pvol=pvol,
        poolId=0,
        allocate_consistency_group=False,
        snapshot_group_name=group,
        auto_split=None,
        is_data_reduction_force_copy=False,
        can_cascade=is_clone,
        svol=svol,
        is_clone=is_clone,
        mirror_unit_id=mu,
        copy_speed=copy_speed,
    )


def main():
    cfg = json.loads(sys.argv[1])
    connection = ConnectionInfo(
        address=cfg["address"], username=cfg["username"], password=cfg["password"]
    )
    report = {}

    # Session: the first request opens one (POST /objects/sessions with Basic), later ones send
    # `Authorization: Session <token>`.
    rest = VSPConnectionManager(connection.address, connection.username, connection.password)
    storage = rest.get("v1/objects/storages/instance")
    report["storage_device_id"] = storage["storageDeviceId"]
    report["model"] = storage["model"]
    report["sessions_opened"] = len(rest.session_manager.token_to_session_id_map)

    # The LDEV, its NAA and its LU paths.
    volumes = VSPVolumeDirectGateway(connection)
    volume = volumes.get_volume_by_id(cfg["ldev"])
    report["naa_id"] = volume.naaId
    report["emulation_type"] = volume.emulationType
    report["ldev_ports"] = [(p["portId"], p["hostGroupNumber"]) for p in volume.ports]
    undefined = volumes.get_volume_by_id(65000)
    report["undefined_emulation_type"] = undefined.emulationType

    # Host groups per FC port, with their WWNs and LU paths (as hv_hg_facts gathers them).
    host_groups = VSPHostGroupDirectGateway(connection)
    report["ports"] = sorted((p.portId, p.portType) for p in host_groups.get_ports())
    found = host_groups.get_host_groups([cfg["fc_port"]], None, None, True, True, False)
    report["fc_groups"] = [
        {
            "name": hg.hostGroupName,
            "number": hg.hostGroupNumber,
            "wwns": [w.id for w in hg.wwns],
            "ldevs": [l.ldevId for l in hg.lunPaths],
        }
        for hg in found.data
    ]

    # iSCSI targets: their IQNs.
    iscsi = VSPIscsiTargetDirectGateway(connection)
    iqns = iscsi.get_iqn_initiators(cfg["iscsi_port"], cfg["iscsi_group"])
    report["iqns"] = [i.iscsiName for i in iqns]

    # Map the LDEV onto the FC group (a job polled to completion), list, map again, unmap.
    target = next(hg for hg in found.data if hg.hostGroupNumber == cfg["fc_group"])
    host_groups.add_luns_to_host_group(target, [cfg["ldev"]])
    luns = host_groups.get_luns(cfg["fc_port"], cfg["fc_group"])
    mapped = [l for l in luns.data if l.ldevId == cfg["ldev"]]
    check(len(mapped) == 1, "one LU path of the LDEV", [l.ldevId for l in luns.data])
    report["lun_id"] = mapped[0].lunId
    report["ldev_ports_mapped"] = sorted(
        (p["portId"], p["hostGroupNumber"]) for p in volumes.get_volume_by_id(cfg["ldev"]).ports
    )
    report["double_map"] = refused(
        lambda: host_groups.add_luns_to_host_group(target, [cfg["ldev"]])
    )
    host_groups.delete_one_lun_from_host_group(target, mapped[0].lun)
    luns = host_groups.get_luns(cfg["fc_port"], cfg["fc_group"])
    report["ldevs_after_unmap"] = [l.ldevId for l in luns.data]
    report["missing_path"] = refused(
        lambda: host_groups.delete_one_lun_from_host_group(target, 200)
    )

    # Thin Image: a clone pair of the LDEV onto the clone target, polled until the copy is
    # complete (concordanceRate 100 in PSUS, not merely PSUP), then deleted.
    snapshots = VSPHtiSnapshotDirectGateway(connection)
    created = create_pair(snapshots, cfg["ldev"], "xcopy-conformance", cfg["clone_target_ldev"],
                          is_clone=True, mu=None, copy_speed="FAST")
    report["clone_created"] = created
    pvol, mu = (int(part) for part in created.split(","))
    states = []
    for _ in range(20):
        pair = snapshots.get_one_snapshot(pvol, mu)
        states.append((pair.status, pair.concordanceRate))
        if pair.status == "PSUS" and pair.concordanceRate == 100:
            break
    report["clone_states"] = states
    report["clone_is_clone"] = pair.isClone
    listed = snapshots.get_snapshot_by_pvol(cfg["ldev"])
    report["pairs_of_pvol"] = [(s.muNumber, s.svolLdevId, s.type) for s in listed.data]
    group = snapshots.get_snapshots_using_group_id("xcopy-conformance")
    report["group_pairs"] = [s.svolLdevId for s in group.snapshots.data]
    snapshots.delete_snapshot(pvol, mu)
    report["clone_pairs_after_delete"] = len(snapshots.get_snapshot_by_pvol(cfg["ldev"]).data)

    # A plain snapshot: split (PSUS with a split time), a second split refused, the group deleted.
    created = create_pair(snapshots, cfg["ldev"], "xcopy-snap", cfg["snapshot_ldev"],
                          is_clone=False, mu=5, copy_speed=None)
    report["snapshot_created"] = created
    snapshots.split_snapshot(cfg["ldev"], 5)
    split = snapshots.get_one_snapshot(cfg["ldev"], 5)
    report["snapshot_split"] = [split.status, split.splitTime is not None]
    report["split_twice"] = refused(lambda: snapshots.split_snapshot(cfg["ldev"], 5))
    report["groups"] = [g.snapshotGroupName for g in snapshots.get_snapshot_groups().data]
    snapshots.delete_snapshot_using_ssg("xcopy-snap")
    report["groups_after_delete"] = [
        g.snapshotGroupName for g in snapshots.get_snapshot_groups().data
    ]
    report["missing_pair"] = refused(lambda: snapshots.get_one_snapshot(cfg["ldev"], 5))

    # Log out every session the library opened (its atexit hook, run here to see it work).
    opened = len(rest.session_manager.token_to_session_id_map)
    rest.session_manager.discard_sessions()
    report["sessions_discarded"] = opened
    print(json.dumps(report))


if __name__ == "__main__":
    main()
