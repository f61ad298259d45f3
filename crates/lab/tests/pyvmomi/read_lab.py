"""Drives the lab's vCenter endpoint with pyVmomi (VMware's SDK) and prints what it saw as JSON.

Environment: LAB_PORT, LAB_USER, LAB_PASSWORD, LAB_THUMBPRINT, LAB_DATACENTER.
Every call goes through pyVmomi's own (de)serializer, so a wrong wire shape raises here.
"""
import json
import os
import ssl
import urllib.request

from pyVim.connect import Connect, Disconnect, SmartConnect
from pyVmomi import vim, vmodl

HOST = "127.0.0.1"
PORT = int(os.environ["LAB_PORT"])
USER = os.environ["LAB_USER"]
PASSWORD = os.environ["LAB_PASSWORD"]
THUMBPRINT = os.environ["LAB_THUMBPRINT"]
DATACENTER = os.environ["LAB_DATACENTER"]

out = {}


def connect(**overrides):
    # A verifying context: the self-signed certificate fails verification, so pyVmomi falls back to
    # pinning it by thumbprint (its 127.0.0.1 default would skip verification altogether). Connect, not
    # SmartConnect: SmartConnect's version probe does not honour the thumbprint.
    args = dict(host=HOST, port=PORT, user=USER, pwd=PASSWORD, thumbprint=THUMBPRINT,
                sslContext=ssl.create_default_context(), version="vim.version.v8_0_3_0")
    args.update(overrides)
    return Connect(**args)


try:
    connect(thumbprint="AB:" * 31 + "AB")
    out["wrong_thumbprint"] = "connected"
except Exception as e:  # pyVmomi raises ssl/ThumbprintMismatch errors depending on version
    out["wrong_thumbprint"] = "{}: {}".format(type(e).__name__, getattr(e, "msg", e))

try:
    connect(pwd="not-the-password")
    out["wrong_password"] = "connected"
except vim.fault.InvalidLogin:
    out["wrong_password"] = "InvalidLogin"

# SmartConnect negotiates the API version from /sdk/vimServiceVersions.xml.
negotiated = SmartConnect(host=HOST, port=PORT, user=USER, pwd=PASSWORD, disableSslCertValidation=True)
out["negotiated_version"] = negotiated._stub.versionId
Disconnect(negotiated)

si = connect()
content = si.RetrieveContent()
out["api_type"] = content.about.apiType
out["current_user"] = content.sessionManager.currentSession.userName


def objects(kind):
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


hosts = []
for h in objects(vim.HostSystem):
    sd = h.config.storageDevice
    hosts.append({
        "name": h.name,
        "moid": h._moId,
        "hbas": [{"type": type(a).__name__, "device": a.device, "iqn": getattr(a, "iScsiName", None)}
                 for a in sd.hostBusAdapter],
        "luns": [{"canonical": lun.canonicalName, "bytes": lun.capacity.block * lun.capacity.blockSize}
                 for lun in sd.scsiLun],
        "lun_keys_match": all(any(lu.lun == lun.key for lu in sd.multipathInfo.lun) for lun in sd.scsiLun),
        "path_states": sorted({p.state for lu in sd.multipathInfo.lun for p in lu.path}),
        "path_adapters_known": all(p.adapter in {a.key for a in sd.hostBusAdapter}
                                   for lu in sd.multipathInfo.lun for p in lu.path),
        "management_ips": [v.spec.ip.ipAddress for nc in h.config.virtualNicManagerInfo.netConfig
                           if nc.nicType == "management" for v in nc.candidateVnic if v.key in nc.selectedVnic],
        "datastores": [d.name for d in h.datastore],
        "kernel_modules": [m.name for m in h.configManager.kernelModuleSystem.QueryModules()],
    })
    h.configManager.storageSystem.RescanAllHba()
out["hosts"] = hosts

def nas_volume(info):
    if not isinstance(info, vim.host.NasDatastoreInfo):
        return None
    nas = info.nas
    return {"type": nas.type, "name": nas.name, "capacity": nas.capacity, "remote_host": nas.remoteHost,
            "remote_path": nas.remotePath, "remote_host_names": list(nas.remoteHostNames)}


out["datastores"] = [{
    "name": d.name,
    "info_type": type(d.info).__name__,
    "extent": d.info.vmfs.extent[0].diskName if isinstance(d.info, vim.host.VmfsDatastoreInfo) else None,
    "nas": nas_volume(d.info),
    "capacity": d.summary.capacity,
    "type": d.summary.type,
} for d in objects(vim.Datastore)]

vms = []
for vm in objects(vim.VirtualMachine):
    vm.RefreshStorageInfo()
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    layout = vm.layoutEx
    files = {f.key: f for f in layout.file}
    vms.append({
        "name": vm.name,
        "host": vm.runtime.host.name,
        "disks": [{
            "file": d.backing.fileName,
            "backing": type(d.backing).__name__,
            "capacity": d.capacityInBytes,
            "datastore": d.backing.datastore.name,
            "rdm_device": getattr(d.backing, "deviceName", None),
            "rdm_lun_uuid": getattr(d.backing, "lunUuid", None),
            "rdm_mode": getattr(d.backing, "compatibilityMode", None),
            "backing_object_id": getattr(d.backing, "backingObjectId", None),
        } for d in disks],
        "layout": [{
            "disk_key": dl.key,
            "files": [[files[k].name, files[k].type, files[k].size] for unit in dl.chain for k in unit.fileKey],
        } for dl in layout.disk],
    })
out["vms"] = vms

# PropertyCollector paging: one object per page through a traversal spec.
view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
pc = content.propertyCollector
spec = vmodl.query.PropertyCollector.FilterSpec(
    objectSet=[vmodl.query.PropertyCollector.ObjectSpec(
        obj=view, skip=True,
        selectSet=[vmodl.query.PropertyCollector.TraversalSpec(
            name="traverseView", type=vim.view.ContainerView, path="view", skip=False)])],
    propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.HostSystem, pathSet=["name", "config.storageDevice.hostBusAdapter"])])
result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1))
pages = []
while result is not None:
    pages.append([{p.name: (p.val if isinstance(p.val, str) else len(p.val)) for p in oc.propSet} for oc in result.objects])
    result = pc.ContinueRetrievePropertiesEx(result.token) if result.token else None
out["pages"] = pages
view.Destroy()

# Missing objects fault like vCenter.
try:
    vim.HostSystem("host-999", si._stub).name
    out["missing_host"] = "found"
except vmodl.fault.ManagedObjectNotFound:
    out["missing_host"] = "ManagedObjectNotFound"

# File transfer through /folder with the session cookie.
dc = objects(vim.Datacenter)[0]
content.fileManager.MakeDirectory(name="[ds1] uploads", datacenter=dc, createParentDirectories=True)
payload = b"copy-offload lab upload\n" * 100
url = f"https://{HOST}:{PORT}/folder/uploads/hello.txt?dcPath={DATACENTER}&dsName=ds1"
ctx = ssl._create_unverified_context()
put = urllib.request.Request(url, data=payload, method="PUT", headers={"Cookie": si._stub.cookie})
out["upload_status"] = urllib.request.urlopen(put, context=ctx).status
get = urllib.request.Request(url, headers={"Cookie": si._stub.cookie})
out["download_matches"] = urllib.request.urlopen(get, context=ctx).read() == payload
try:
    urllib.request.urlopen(urllib.request.Request(url), context=ctx)
    out["anonymous_download"] = "allowed"
except urllib.error.HTTPError as e:
    out["anonymous_download"] = e.code

Disconnect(si)
try:
    content.rootFolder.name
    out["after_logout"] = "still authenticated"
except vim.fault.NotAuthenticated:
    out["after_logout"] = "NotAuthenticated"

print(json.dumps(out))
