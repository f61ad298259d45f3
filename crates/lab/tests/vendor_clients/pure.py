"""Drives the lab's FlashArray facade with Pure Storage's own client (py-pure-client) through
every operation copy-offload's FlashArray plugin uses, and prints what it saw as JSON for the Rust
test to check against the SAN model.

Environment: LAB_TARGET (host:port, HTTPS), LAB_API_TOKEN, LAB_VOLUME (a volume connected to
nothing), LAB_SOURCE (a volume tagged as vVol LAB_VVOL_ID), LAB_ESX_IQN, LAB_ESX_WWN.
"""

import json
import os
import ssl
import sys
import urllib.request

from pypureclient import flasharray
from pypureclient.flasharray import (
    HostPatch,
    HostPost,
    Reference,
    ReferenceNoId,
    VolumePost,
)

target = os.environ["LAB_TARGET"]
volume = os.environ["LAB_VOLUME"]
source = os.environ["LAB_SOURCE"]
vvol_id = os.environ["LAB_VVOL_ID"]
esx_iqn = os.environ["LAB_ESX_IQN"]
esx_wwn = os.environ["LAB_ESX_WWN"]
seen = {}


def ok(response, what):
    if not isinstance(response, flasharray.ValidResponse):
        errors = [(e.context, e.message) for e in getattr(response, "errors", [])]
        sys.exit(f"{what} failed: HTTP {response.status_code}: {errors}")
    # Deletes answer without a body: no items.
    return list(response.items) if response.items is not None else []


def refused(response, what):
    if isinstance(response, flasharray.ValidResponse):
        sys.exit(f"{what} was accepted but must be refused")
    return {
        "status": response.status_code,
        "messages": [e.message for e in response.errors],
        "contexts": [e.context for e in response.errors],
    }


# Login: version negotiation from /api/api_version, then the API token for a session.
try:
    flasharray.Client(target, api_token="not-the-token", verify_ssl=False)
    sys.exit("a wrong API token must not log in")
except Exception as error:  # the library raises PureError
    seen["wrong_token"] = str(error)

client = flasharray.Client(target, api_token=os.environ["LAB_API_TOKEN"], verify_ssl=False)
seen["rest_version"] = client.get_rest_version()

arrays = ok(client.get_arrays(), "get_arrays")
seen["array"] = {"os": arrays[0].os, "version": arrays[0].version}
controllers = ok(client.get_controllers(), "get_controllers")
seen["models"] = sorted({c.model for c in controllers})

# Find the volume by name, by id and by serial; a missing one is an error response.
by_name = ok(client.get_volumes(names=[volume]), "get_volumes(names)")[0]
by_id = ok(client.get_volumes(ids=[by_name.id]), "get_volumes(ids)")[0]
by_serial = ok(client.get_volumes(filter=f"serial='{by_name.serial}'"), "get_volumes(filter)")
seen["volume"] = {
    "id": by_name.id,
    "serial": by_name.serial,
    "provisioned": by_name.provisioned,
    "same_by_id": by_id.name == by_name.name,
    "by_serial": [v.name for v in by_serial],
}
seen["missing_volume"] = refused(client.get_volumes(names=["no-such-volume"]), "missing volume")

# Paging through the library's continuation tokens.
first = client.get_volumes(limit=1, total_item_count=True)
names = [v.name for v in ok(first, "get_volumes(limit=1)")]
token = first.continuation_token
while token:
    page = client.get_volumes(limit=1, continuation_token=token)
    names += [v.name for v in ok(page, "get_volumes(continuation_token)")]
    token = page.continuation_token
seen["paged_names"] = names
seen["total_item_count"] = first.total_item_count

# Hosts: create the ESXi host, add a port, list local hosts; an IQN belongs to one host only.
host = "xcopy-hostsystem-host-9"
created = ok(
    client.post_hosts(names=[host], host=HostPost(iqns=[esx_iqn], personality="esxi")),
    "post_hosts",
)[0]
seen["created_host"] = {"name": created.name, "iqns": created.iqns, "personality": created.personality}
patched = ok(client.patch_hosts(names=[host], host=HostPatch(add_wwns=[esx_wwn])), "patch_hosts")[0]
seen["patched_wwns"] = patched.wwns
seen["duplicate_iqn"] = refused(
    client.post_hosts(names=["other-host"], host=HostPost(iqns=[esx_iqn])), "duplicate IQN"
)
local = ok(client.get_hosts(filter="is_local"), "get_hosts(filter=is_local)")
seen["local_hosts"] = sorted(h.name for h in local)

# Connections: map, map again (refused as existing), list, unmap.
connection = ok(client.post_connections(host_names=[host], volume_names=[volume]), "post_connections")[0]
seen["connection"] = {"host": connection.host.name, "lun": connection.lun, "volume": connection.volume.name}
seen["duplicate_connection"] = refused(
    client.post_connections(host_names=[host], volume_names=[volume]), "duplicate connection"
)
listed = ok(client.get_connections(volume_names=[volume]), "get_connections")
seen["listed_connections"] = [(c.host.name, c.lun) for c in listed]

# The session ends behind the library's back (an array restart): it logs in again once.
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
logout = urllib.request.Request(
    f"https://{target}/api/{seen['rest_version']}/logout",
    method="POST",
    headers={"x-auth-token": client._token_man.get_session_token()},
)
urllib.request.urlopen(logout, context=context).read()
ok(client.delete_connections(host_names=[host], volume_names=[volume]), "delete_connections after 401")
seen["after_unmap"] = [c.host.name for c in ok(client.get_connections(volume_names=[volume]), "get_connections")]

# Host groups: shared connections every member sees, listed with the group's name.
ok(client.post_host_groups(names=["xcopy-hg"]), "post_host_groups")
ok(client.patch_hosts(names=[host], host=HostPatch(host_group=ReferenceNoId(name="xcopy-hg"))), "patch_hosts(host_group)")
ok(client.post_connections(host_group_names=["xcopy-hg"], volume_names=[volume]), "post_connections(host group)")
shared = ok(client.get_connections(volume_names=[volume]), "get_connections")
seen["shared_connections"] = [(c.host.name, c.host_group.name) for c in shared]
ok(client.delete_connections(host_group_names=["xcopy-hg"], volume_names=[volume]), "delete_connections(host group)")
ok(client.patch_hosts(names=[host], host=HostPatch(host_group=ReferenceNoId(name=""))), "patch_hosts(leave group)")
ok(client.delete_host_groups(names=["xcopy-hg"]), "delete_host_groups")

# Array-side copy: the vVol's volume from its tag, then a copy with overwrite.
tags = ok(
    client.get_volumes_tags(
        resource_destroyed=False,
        namespaces=["vasa-integration.purestorage.com"],
        filter=f"key='PURE_VVOL_ID' AND value='{vvol_id}'",
    ),
    "get_volumes_tags",
)
seen["vvol_volume"] = tags[0].resource.name
seen["copy_without_overwrite"] = refused(
    client.post_volumes(names=[volume], volume=VolumePost(source=Reference(name=source))),
    "copy without overwrite",
)
copied = ok(
    client.post_volumes(names=[volume], overwrite=True, volume=VolumePost(source=Reference(name=source))),
    "post_volumes(overwrite)",
)[0]
seen["copied"] = {"name": copied.name, "serial": copied.serial, "source": copied.source.name}

ok(client.delete_hosts(names=[host]), "delete_hosts")
seen["hosts_left"] = sorted(h.name for h in ok(client.get_hosts(), "get_hosts"))

print(json.dumps(seen))
# The library logs out when the process exits.
