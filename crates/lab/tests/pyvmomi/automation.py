"""What generic vSphere automation calls first, driven with pyVmomi against any endpoint (the lab or vcsim).

Environment: TARGET_PORT, TARGET_USER, TARGET_PASSWORD (the endpoint listens on 127.0.0.1).
Prints one JSON object: check name -> what the endpoint answered. A fault is reported as
"fault:<VIM fault type>", any other failure as "error:<exception>: <message>", so one unsupported call
does not hide the answers to the others. The caller compares the answers with vCenter's.
"""
import json
import os
import re
import ssl

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl

HOST = "127.0.0.1"
PORT = int(os.environ["TARGET_PORT"])
USER = os.environ["TARGET_USER"]
PASSWORD = os.environ["TARGET_PASSWORD"]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
DISK_UUID = re.compile(r"^([0-9a-f]{2} ){7}[0-9a-f]{2}-([0-9a-f]{2} ){7}[0-9a-f]{2}$", re.I)
PC = vmodl.query.PropertyCollector

out = {}


def fault_name(e):
    return "fault:" + type(e).__name__.split(".")[-1]


def check(name):
    def run(fn):
        try:
            out[name] = fn()
        except vmodl.MethodFault as e:
            out[name] = fault_name(e)
        except Exception as e:  # reported, not raised: the other checks still run
            out[name] = "error:{}: {}".format(type(e).__name__, e)
        return fn
    return run


si = SmartConnect(host=HOST, port=PORT, user=USER, pwd=PASSWORD, disableSslCertValidation=True)
content = si.RetrieveContent()
pc = content.propertyCollector


def objects(kind):
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


dc = objects(vim.Datacenter)[0]
vm = next(v for v in objects(vim.VirtualMachine)
          if any(isinstance(d, vim.vm.device.VirtualDisk) for d in v.config.hardware.device))
disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
host = vm.runtime.host
hosts = sorted(objects(vim.HostSystem), key=lambda h: h.name)
ds = disk.backing.datastore
vmx = vm.config.files.vmPathName
vm_dir = vmx.split("] ", 1)[1].rsplit("/", 1)[0]
disk_name = disk.backing.fileName.rsplit("/", 1)[1]


def generic(folder_path):
    """A folder path with this endpoint's names replaced, so endpoints with other inventories compare."""
    return folder_path.replace("[{}]".format(ds.name), "[<ds>]").replace(vm_dir, "<vm>")

STANDARD_MANAGERS = [
    "setting", "userDirectory", "sessionManager", "authorizationManager", "perfManager",
    "scheduledTaskManager", "alarmManager", "eventManager", "taskManager", "extensionManager",
    "customizationSpecManager", "customFieldsManager", "diagnosticManager", "licenseManager",
    "searchIndex", "fileManager", "virtualDiskManager", "ovfManager",
]


@check("service_content.missing_managers")
def _():
    return [m for m in STANDARD_MANAGERS if getattr(content, m) is None]


@check("service_content.unreadable_managers")
def _():
    unreadable = []
    for m in STANDARD_MANAGERS:
        obj = getattr(content, m)
        if obj is None:
            continue
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj)],
                             propSet=[PC.PropertySpec(type=type(obj), all=True)])
        try:
            pc.RetrieveContents([spec])
        except vmodl.MethodFault as e:
            unreadable.append("{}:{}".format(m, fault_name(e)))
    return unreadable


def found(entity, expected):
    return "none" if entity is None else ("expected" if entity == expected else "other:" + entity._moId)


sidx = content.searchIndex


@check("search_index.vm_by_inventory_path")
def _():
    return found(sidx.FindByInventoryPath("{}/vm/{}".format(dc.name, vm.name)), vm)


@check("search_index.host_by_inventory_path")
def _():
    return found(sidx.FindByInventoryPath("{}/host/{}/{}".format(dc.name, host.parent.name, host.name)), host)


@check("search_index.missing_inventory_path")
def _():
    return found(sidx.FindByInventoryPath("{}/vm/no-such-vm".format(dc.name)), None)


@check("search_index.find_child")
def _():
    return found(sidx.FindChild(dc.vmFolder, vm.name), vm)


@check("search_index.vm_by_datastore_path")
def _():
    return found(sidx.FindByDatastorePath(dc, vmx), vm)


@check("search_index.vm_by_bios_uuid")
def _():
    return found(sidx.FindByUuid(dc, vm.config.uuid, True), vm)


@check("search_index.vm_by_instance_uuid")
def _():
    return found(sidx.FindByUuid(dc, vm.config.instanceUuid, True, True), vm)


@check("search_index.bios_uuid_as_instance_uuid")
def _():
    return found(sidx.FindByUuid(dc, vm.config.uuid, True, True), None)


@check("search_index.host_by_uuid")
def _():
    return found(sidx.FindByUuid(dc, host.summary.hardware.uuid, False), host)


@check("search_index.host_by_dns_name")
def _():
    return found(sidx.FindByDnsName(dc, host.name, False), host)


@check("vm.uuids")
def _():
    bios, instance = vm.config.uuid, vm.config.instanceUuid
    return {"bios_is_uuid": bool(UUID.match(bios)), "instance_is_uuid": bool(UUID.match(instance)),
            "distinct": bios != instance}


@check("host.summary.hardware")
def _():
    hw = host.summary.hardware
    return {"uuid_is_uuid": bool(UUID.match(hw.uuid)), "has_vendor_and_model": bool(hw.vendor and hw.model),
            "memory": hw.memorySize > 0, "cpu": hw.numCpuCores > 0 and hw.cpuMhz > 0,
            "hbas_counted": hw.numHBAs == len(host.config.storageDevice.hostBusAdapter)}


@check("property_collector.invalid_property")
def _():
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=host)],
                         propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=["config.noSuchThing"])])
    try:
        pc.RetrieveContents([spec])
        return "answered"
    except vmodl.query.InvalidProperty as e:
        return "fault:InvalidProperty name={}".format(e.name)


@check("virtual_disk.uuid")
def _():
    answer = content.virtualDiskManager.QueryVirtualDiskUuid(disk.backing.fileName, dc)
    flat = lambda u: re.sub(r"[ -]", "", u or "").lower()
    return {"vim_form": bool(DISK_UUID.match(answer)),
            "is_the_backing_uuid": bool(disk.backing.uuid) and flat(answer) == flat(disk.backing.uuid)}


@check("virtual_disk.uuid_of_missing_disk")
def _():
    return content.virtualDiskManager.QueryVirtualDiskUuid("[{}] no-such/disk.vmdk".format(ds.name), dc)


OPTIONS = ["DataMover.HardwareAcceleratedMove", "DataMover.HardwareAcceleratedInit",
           "DataMover.MaxHWTransferSize", "Disk.MaxLUN"]


@check("advanced_options.per_host")
def _():
    answers = {}
    for n, h in enumerate(hosts, 1):
        manager = h.configManager.advancedOption
        values = {}
        for key in OPTIONS:
            try:
                option = manager.QueryOptions(key)[0]
                values[key] = [option.key == key, option.value, type(option.value).__name__]
            except vmodl.MethodFault as e:
                values[key] = fault_name(e)
        answers["host {}".format(n)] = values
    return answers


@check("advanced_options.group")
def _():
    return sorted(o.key for o in hosts[0].configManager.advancedOption.QueryOptions("DataMover."))


@check("advanced_options.update")
def _():
    manager = hosts[0].configManager.advancedOption
    key = "DataMover.MaxHWTransferSize"
    before = manager.QueryOptions(key)[0].value
    try:
        manager.UpdateOptions([vim.option.OptionValue(key=key, value=8192)])
        as_int = "accepted"
    except vmodl.MethodFault as e:
        as_int = fault_name(e)
    try:
        manager.UpdateOptions([vim.option.OptionValue(key=key, value=VmomiSupport.vmodlTypes["long"](1 << 40))])
        out_of_range = "accepted"
    except vmodl.MethodFault as e:
        out_of_range = fault_name(e)
    manager.UpdateOptions([vim.option.OptionValue(key=key, value=VmomiSupport.vmodlTypes["long"](8192))])
    after = manager.QueryOptions(key)[0].value
    defined = {d.key: (d.optionType.min, d.optionType.max, d.optionType.defaultValue)
               for d in manager.supportedOption}
    manager.UpdateOptions([vim.option.OptionValue(key=key, value=VmomiSupport.vmodlTypes["long"](before))])
    return {"int_value": as_int, "out_of_range": out_of_range, "long_value_applied": after == 8192,
            "restored": manager.QueryOptions(key)[0].value == before,
            "range_and_default": list(defined.get(key, ()))}


@check("advanced_options.unknown")
def _():
    return hosts[0].configManager.advancedOption.QueryOptions("No.SuchOption")


browser = ds.browser
disk_query = vim.host.DatastoreBrowser.VmDiskQuery(
    details=vim.host.DatastoreBrowser.VmDiskQuery.Details(capacityKb=True, diskType=True))
typed = vim.host.DatastoreBrowser.FileInfo.Details(fileType=True, fileSize=True, modification=True, fileOwner=False)


@check("task.wait_for_updates_ex")
def _():
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"], query=[disk_query], details=typed)
    task = browser.SearchDatastore_Task("[{}] {}".format(ds.name, vm_dir), spec)
    filter_spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=task)],
        propSet=[PC.PropertySpec(type=vim.Task,
                                 pathSet=["info.state", "info.progress", "info.result", "info.error"])])
    task_filter = pc.CreateFilter(filter_spec, True)
    version, kinds, states = None, [], []
    while not states or states[-1] not in ("success", "error"):
        update = pc.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=30))
        if update is None:
            states.append("no update within 30 s")
            break
        version = update.version
        for filter_update in update.filterSet:
            for object_update in filter_update.objectSet:
                kinds.append(object_update.kind)
                states += [c.val for c in object_update.changeSet or [] if c.name == "info.state"]
    quiet = pc.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=0))
    task_filter.Destroy()
    try:
        task_filter.Destroy()
        destroyed_twice = "accepted"
    except vmodl.fault.ManagedObjectNotFound:
        destroyed_twice = "fault:ManagedObjectNotFound"
    result = task.info.result
    return {
        "first_update": kinds[0] if kinds else None,
        "final_state": states[-1],
        "no_change_answers_none": quiet is None,
        "destroy_twice": destroyed_twice,
        "folder_path": generic(result.folderPath),
        "files": [["<disk>" if f.path == disk_name else f.path, type(f).__name__.split(".")[-1],
                   getattr(f, "capacityKb", None) == disk.capacityInKB] for f in result.file],
        "in_recent_tasks": task in content.taskManager.recentTask,
        "entity_is_the_datastore": task.info.entityName == ds.name,
        "progress_on_success": task.info.progress,
    }


@check("task.pyvim_wait_for_task")
def _():
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"], query=[disk_query], details=typed)
    task = browser.SearchDatastoreSubFolders_Task("[{}]".format(ds.name), spec)
    state = WaitForTask(task)
    folders = [generic(r.folderPath) for r in task.info.result
               if vm_dir in r.folderPath and any(f.path == disk_name for f in r.file or [])]
    return {"state": state, "disk_found_in": folders}


@check("task.error")
def _():
    task = browser.SearchDatastore_Task("[{}] no-such-folder".format(ds.name), None)
    try:
        WaitForTask(task)
        raised = "nothing"
    except vmodl.MethodFault as e:
        raised = fault_name(e)
    info = task.info
    return {"raised": raised, "state": info.state, "error": fault_name(info.error) if info.error else None,
            "result": info.result}


@check("session.clone_ticket")
def _():
    ticket = content.sessionManager.AcquireCloneTicket()
    stub = SoapStubAdapter(host=HOST, port=PORT, version=si._stub.version,
                           sslContext=ssl._create_unverified_context())
    clone = vim.ServiceInstance("ServiceInstance", stub)
    clone_manager = clone.RetrieveContent().sessionManager
    session = clone_manager.CloneSession(ticket)
    answer = {"user": session.userName == USER,
              "cloned_session_works": clone.content.rootFolder.name == content.rootFolder.name}
    clone_manager.Logout()
    stub = SoapStubAdapter(host=HOST, port=PORT, version=si._stub.version,
                           sslContext=ssl._create_unverified_context())
    try:
        vim.ServiceInstance("ServiceInstance", stub).RetrieveContent().sessionManager.CloneSession(ticket)
        answer["ticket_reused"] = "accepted"
    except vmodl.MethodFault as e:
        answer["ticket_reused"] = fault_name(e)
    return answer


@check("folder.dc_path")
def _():
    import urllib.error
    import urllib.request
    ctx = ssl._create_unverified_context()
    payload = b"dcPath forms\n"
    answers = {}
    for form in ["/" + dc.name, dc.name, "NoSuchDC"]:
        url = "https://{}:{}/folder/{}/dcpath-check.txt?dcPath={}&dsName={}".format(
            HOST, PORT, vm_dir, urllib.request.quote(form, safe=""), urllib.request.quote(ds.name))
        form_name = form.replace(dc.name, "<dc>")
        try:
            put = urllib.request.Request(url, data=payload, method="PUT", headers={"Cookie": si._stub.cookie})
            urllib.request.urlopen(put, context=ctx)
            get = urllib.request.Request(url, headers={"Cookie": si._stub.cookie})
            answers[form_name] = urllib.request.urlopen(get, context=ctx).read() == payload
            delete = urllib.request.Request(url, method="DELETE", headers={"Cookie": si._stub.cookie})
            urllib.request.urlopen(delete, context=ctx)
        except urllib.error.HTTPError as e:
            answers[form_name] = e.code
    return answers


Disconnect(si)
print(json.dumps(out, sort_keys=True))
