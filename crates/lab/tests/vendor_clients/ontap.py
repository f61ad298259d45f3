"""NetApp's own ONTAP client (netapp-ontap) against the lab's ONTAP facade.

Drives every operation copy-offload's ONTAP plugin uses — cluster version, the SVM, the LUN by path
with its serial, igroups (create with an initiator, add and remove an initiator), LUN maps (create,
list, read, delete), igroup delete — through the library's resource objects, exactly as an
administrator's script would, and prints what it saw as JSON for the Rust test to check. The library
raises on any answer it cannot parse, so a run that completes is the library accepting the facade.
"""

import json
import os
import sys

from netapp_ontap import HostConnection, config
from netapp_ontap.error import NetAppRestError
from netapp_ontap.resources import Cluster, Igroup, IgroupInitiator, Lun, LunMap, Svm

host, port = os.environ["LAB_TARGET"].rsplit(":", 1)
svm_name = os.environ["LAB_SVM"]
lun_path = os.environ["LAB_LUN"]
iqn = os.environ["LAB_ESX_IQN"]
second_iqn = os.environ["LAB_ESX_IQN2"]

config.CONNECTION = HostConnection(
    host,
    port=int(port),
    username=os.environ["LAB_USER"],
    password=os.environ["LAB_PASSWORD"],
    verify=False,
)
seen = {}

cluster = Cluster()
cluster.get(fields="version")
seen["version"] = [cluster.version.generation, cluster.version.major, cluster.version.minor]

svms = list(Svm.get_collection(name=svm_name))
seen["svms"] = [svm.name for svm in svms]

luns = list(Lun.get_collection(**{"svm.name": svm_name, "name": lun_path}, fields="serial_number,os_type"))
seen["luns"] = [{"name": lun.name, "serial_number": lun.serial_number} for lun in luns]
lun = luns[0]

igroup = Igroup(
    svm={"name": svm_name},
    name="xcopy-conformance",
    protocol="iscsi",
    os_type="vmware",
    initiators=[{"name": iqn}],
)
igroup.post(hydrate=True)
seen["igroup_created"] = {"name": igroup.name, "has_uuid": bool(igroup.uuid)}

try:
    Igroup(svm={"name": svm_name}, name="xcopy-conformance", protocol="iscsi", os_type="vmware").post()
    seen["duplicate_igroup"] = None
except NetAppRestError as error:
    seen["duplicate_igroup"] = error.http_err_response.http_response.status_code

added = IgroupInitiator(igroup.uuid, name=second_iqn)
added.post()
found = list(Igroup.get_collection(**{"svm.name": svm_name, "initiators.name": second_iqn}, fields="initiators"))
seen["igroups_with_second_initiator"] = [g.name for g in found]
IgroupInitiator(igroup.uuid, name=second_iqn).delete()
igroup.get(fields="initiators")
seen["initiators_after_remove"] = [i.name for i in igroup.initiators]

lun_map = LunMap(svm={"name": svm_name}, lun={"name": lun_path}, igroup={"name": "xcopy-conformance"})
lun_map.post(hydrate=True)
seen["lun_map_created"] = {"lun": lun_map.lun.name, "igroup": lun_map.igroup.name}

maps = list(LunMap.get_collection(**{"lun.uuid": lun.uuid}, fields="igroup.name,logical_unit_number"))
seen["maps"] = sorted(m.igroup.name for m in maps)

one = LunMap(lun={"uuid": lun.uuid}, igroup={"uuid": igroup.uuid})
one.get()
seen["map_read"] = one.igroup.name

one.delete()
seen["maps_after_delete"] = sorted(
    m.igroup.name for m in LunMap.get_collection(**{"lun.uuid": lun.uuid}, fields="igroup.name")
)

Igroup(uuid=igroup.uuid).delete()
seen["igroups_left"] = [g.name for g in Igroup.get_collection(**{"svm.name": svm_name, "name": "xcopy-conformance"})]

json.dump(seen, sys.stdout)
