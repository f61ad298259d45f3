"""secure-vmkfstools-wrapper: the forced command behind the restricted copy-offload SSH key.

ESXi runs this script for every SSH session opened with the copy-offload key:

    command="python /vmfs/volumes/<datastore>/secure-vmkfstools-wrapper.py",no-port-forwarding,...

It reads only SSH_ORIGINAL_COMMAND, never hands client text to a shell, and accepts exactly:

    --probe                                     connectivity probe, replies SSH_OK
    --version                                   {"version": ...}
    --clone -s <source.vmdk> -t <device> [-i <task id>]
                                                start vmkfstools clone into an RDM on <device>;
                                                with -i the task gets that id, and a repeated
                                                start with an existing id answers that task
    --task-get -i <task id>                     progress, exit code, xcopy use
    --task-abort -i <task id>                   stop a running clone
    --task-clean -i <task id>                   remove the RDM descriptor and the task state

plus the older framing `DS=<datastore>;CMD=<operation>` (an empty DS is the probe). Arguments
are parsed with POSIX shell quoting rules (so names with spaces work) but nothing is executed by
a shell. Replies use the esxcli XML envelope with a JSON message, the format the populator and
older populators read.

Standard library only, Python 3.8 or later (ESXi 7.0 and 8.0); the script stays resident only
for the duration of one request.

What it defends against (see docs/esxi.md, "Threat model"): a client sending any command, a
datastore writer (planted modules next to this script, symlinks in VM folders, hostile file
names), a local non-root user (a planted task root in /tmp), and a hostile populator journal
(task ids). Every path read or written is resolved and checked to stay on its datastore; task
state is trusted only inside a root-owned 0700 task root; a pid is signalled only when the
clone's supervisor has proven, with the task's secret, that it is that pid.
"""

import sys

# `python script.py` puts the script's folder first on sys.path: the datastore root, writable by
# anyone with datastore file privileges. The key line runs `python -I` (no such entry); an older
# key line does not, so the entry is dropped here, before anything else is imported.
if not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)) and sys.path:
    del sys.path[0]
sys.path[:] = [entry for entry in sys.path if entry.startswith("/") and not entry.startswith("/vmfs/")]


import errno
import json
import os
import re
import shlex
import signal
import stat
import time

# ESXi constants. Tests substitute only these lines.
SCRIPT_VERSION = "1.2.0"
VMKFSTOOLS = "/bin/vmkfstools"
VSISH = "/bin/vsish"
SUPERVISOR_SHELL = "/bin/sh"
TASK_ROOT = "/tmp/secure-vmkfstools-wrapper"
FS_ROOT = ""
BOOT_VOLUMES = ("/bootbank", "/altbootbank")
# End of ESXi constants.

MAX_COMMAND_CHARS = 4096
MAX_PATH_BYTES = 1024
MAX_TASKS = 64
TAIL_BYTES = 4096
ABORT_GRACE_SECONDS = 10.0
CONCURRENT_START_WAIT_SECONDS = 5.0
STALE_TASK_SECONDS = 5 * 24 * 3600
LOST_EXIT_CODE = "255"
MAX_LOG_CHARS = 512

TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}\Z")
PARTITION = re.compile(r".*:[0-9]+\Z", re.S)
LEGACY_FRAME = re.compile(r"DS=([^;]*);CMD=(.*)\Z", re.S)
CLONE_WRITE_OPS = re.compile(r"cloneWriteOps\s*:\s*(0x[0-9a-fA-F]+|[0-9]+)", re.I)
RDM_EXTENT = re.compile(r'^\s*RW\s+\d+\s+VMFSRDM(?:PASSTHROUGH)?\s+"([^"/]+)"', re.M)
SPANNED_PARTITION = re.compile(r"^\s+([A-Za-z0-9_][A-Za-z0-9._:-]*):[0-9]+\s*$")

# The supervisor is a constant program: client-supplied values only ever travel as its argv,
# never as shell source. It exists so that vmkfstools' exit code is recorded after this
# script has exited, without keeping a Python interpreter resident for the whole clone. It
# first writes the task's secret and its own pid to `alive` (there is no /proc on ESXi to ask
# which program a pid runs): only a pid proven that way is ever signalled. `alive` goes only
# after the exit code is recorded, so no reader ever sees neither. A trap *handler*
# (not an ignore) lets SIGTERM reach vmkfstools while the shell survives to record the exit code.
SUPERVISOR = (
    'd=$1; n=$2; shift 2; echo "$n $$" >"$d/alive.tmp" && mv -f "$d/alive.tmp" "$d/alive"; '
    'trap : HUP INT TERM; "$@"; rc=$?; '
    'echo "$rc" >"$d/exitcode.tmp" && mv -f "$d/exitcode.tmp" "$d/exitcode"; rm -f "$d/alive"'
)

OPERATIONS = {
    "--probe": ("probe", {}),
    "--version": ("version", {}),
    "-v": ("version", {}),
    "--clone": (
        "clone",
        {
            "-s": "source",
            "--source-vmdk": "source",
            "-t": "target",
            "--target-lun": "target",
            "-i": "task_id",
            "--task-id": "task_id",
        },
    ),
    "--task-get": ("task_get", {"-i": "task_id", "--task-id": "task_id"}),
    "--task-abort": ("task_abort", {"-i": "task_id", "--task-id": "task_id"}),
    "--task-clean": ("task_clean", {"-i": "task_id", "--task-id": "task_id"}),
}
# Options an operation may leave out: a clone without -i gets an id chosen here (1.0.0 behaviour).
OPTIONAL = {"clone": {"task_id"}}


class Refused(Exception):
    """A request this script will not carry out; `status` is the reply status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def is_text_char(char):
    """Printable characters and Unicode spaces (U+00A0, U+3000, ...: vSphere allows them in
    names); no control, separator, invisible formatting or unassigned characters."""
    return char.isprintable() or (char.isspace() and ord(char) >= 0xA0 and char not in "\u2028\u2029")


def printable(text, keep_newlines=True):
    """`text` with every character that is not valid, visible text replaced by '?': replies must
    stay well-formed XML and syslog lines must not carry terminal escapes or forged lines."""
    return "".join(
        char if is_text_char(char) or (keep_newlines and char in "\n\t") else "?" for char in text
    )


def xml_escape(text):
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reply(status, message):
    sys.stdout.write(
        '<?xml version="1.0" ?>\n'
        '<output xmlns="http://www.vmware.com/Products/ESX/5.0/esxcli/">\n'
        '    <structure typeName="result">\n'
        '        <field name="status"><string>%d</string></field>\n'
        '        <field name="message"><string>%s</string></field>\n'
        "    </structure>\n"
        "</output>\n" % (status, xml_escape(message))
    )
    sys.stdout.flush()


def log(message):
    try:
        import syslog

        syslog.openlog("secure-vmkfstools-wrapper")
        syslog.syslog(printable(message[:MAX_LOG_CHARS], keep_newlines=False))
    except Exception:
        pass


# ---------------------------------------------------------------- request parsing


def parse_request(raw):
    """Turn SSH_ORIGINAL_COMMAND into (operation, arguments) or raise Refused."""
    if raw is None:
        raise Refused("no command given: this key only runs copy-offload wrapper operations")
    if len(raw) > MAX_COMMAND_CHARS:
        raise Refused("command longer than %d characters" % MAX_COMMAND_CHARS)
    for char in raw:
        if not is_text_char(char):
            raise Refused("command contains a control, invisible or non-printable character")
    legacy = LEGACY_FRAME.match(raw)
    if legacy:
        datastore, raw = legacy.groups()
        if datastore == "":
            return "probe", {}
        check_datastore_name(datastore)
    try:
        words = shlex.split(raw, comments=False, posix=True)
    except ValueError as err:
        raise Refused("command quoting is invalid: %s" % err)
    if not words:
        raise Refused("empty command")
    if words[0] not in OPERATIONS:
        raise Refused("Unknown option: %s" % words[0][:64])
    operation, options = OPERATIONS[words[0]]
    args = {}
    rest = words[1:]
    while rest:
        option = rest.pop(0)
        if option not in options:
            raise Refused("Unknown option: %s" % option[:64])
        name = options[option]
        if name in args:
            raise Refused("option %s given twice" % option)
        if not rest:
            raise Refused("option %s needs a value" % option)
        args[name] = rest.pop(0)
    missing = sorted(set(options.values()) - set(args) - OPTIONAL.get(operation, set()))
    if missing:
        raise Refused("missing required option(s) for %s: %s" % (words[0], ", ".join(missing)))
    if "task_id" in args and not TASK_ID.match(args["task_id"]):
        raise Refused("task id must be a lowercase UUID")
    if operation == "clone":
        args["source"] = source_vmdk_path(args["source"])
        args["target"] = target_device_path(args["target"])
    return operation, args


def check_datastore_name(name):
    if name in (".", "..") or "/" in name or not name.strip():
        raise Refused("invalid datastore name in DS=")


def normalised(path, what):
    if not path.startswith("/"):
        raise Refused("Path validation error: %s must be an absolute path" % what)
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise Refused("Path validation error: %s is longer than %d bytes" % (what, MAX_PATH_BYTES))
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused("Path validation error: %s must not contain '..'" % what)
    return parts


def volumes_root():
    return os.path.realpath(FS_ROOT + "/vmfs/volumes")


def datastore_root(datastore):
    """The resolved folder of `datastore`: /vmfs/volumes/<name> is a link to /vmfs/volumes/<uuid>
    on ESXi, so it must resolve to a direct child of /vmfs/volumes and nowhere else."""
    real = os.path.realpath(FS_ROOT + "/vmfs/volumes/" + datastore)
    parent, name = os.path.split(real)
    if parent != volumes_root() or not name or not os.path.isdir(real):
        raise Refused("Path validation error: datastore %s does not resolve to a datastore under /vmfs/volumes" % datastore)
    return real


def on_datastore(real, root):
    return real.startswith(root + "/")


def is_vmdk_name(name):
    return len(name) > len(".vmdk") and name.lower().endswith(".vmdk") and not name.startswith("-")


def source_vmdk_path(path):
    """(ESXi path as given, resolved source) for a source VMDK, or Refused. The resolved path,
    not the given one, is what vmkfstools reads and what the RDM descriptor is written next to:
    a symlink in a VM folder cannot lead either out of the datastore."""
    parts = normalised(path, "source VMDK")
    if len(parts) < 4 or parts[:2] != ["vmfs", "volumes"]:
        raise Refused("Path validation error: source VMDK must be /vmfs/volumes/<datastore>/.../<disk>.vmdk")
    if not is_vmdk_name(parts[-1]):
        raise Refused("Path validation error: source must be a .vmdk descriptor")
    logical = "/" + "/".join(parts)
    root = datastore_root(parts[2])
    real = os.path.realpath(FS_ROOT + logical)
    if not on_datastore(real, root):
        raise Refused("Path validation error: source VMDK resolves outside its datastore /vmfs/volumes/%s" % parts[2])
    if not is_vmdk_name(os.path.basename(real)):
        raise Refused("Path validation error: source VMDK resolves to a file that is not a .vmdk descriptor")
    if not os.path.isfile(real):
        raise Refused("source VMDK %s not found" % logical)
    return logical, real


def boot_devices():
    """Devices holding the host's boot banks, from `vmkfstools -P` (empty when ESXi booted
    without a boot disk, e.g. stateless)."""
    devices = set()
    for volume in BOOT_VOLUMES:
        out = capture([VMKFSTOOLS, "-P", volume])
        if out is None:
            continue
        spanned = False
        for line in out.splitlines():
            if line.startswith("Partitions spanned"):
                spanned = True
                continue
            match = SPANNED_PARTITION.match(line) if spanned else None
            if match:
                devices.add(match.group(1))
            elif spanned and line.strip():
                spanned = False
    return devices


def target_device_path(path):
    """(ESXi path as given, resolved device name) for a clone target, or Refused: a whole device
    under /vmfs/devices/disks (links such as vml.* resolve to the device they name), never a
    partition and never the boot device."""
    parts = normalised(path, "target device")
    if len(parts) != 4 or parts[:3] != ["vmfs", "devices", "disks"] or not DEVICE_NAME.match(parts[3]):
        raise Refused("Path validation error: target must be /vmfs/devices/disks/<device id>")
    logical = "/" + "/".join(parts)
    disks = os.path.realpath(FS_ROOT + "/vmfs/devices/disks")
    real = os.path.realpath(FS_ROOT + logical)
    parent, device = os.path.split(real)
    if parent != disks or not DEVICE_NAME.match(device):
        raise Refused("Path validation error: target %s resolves outside /vmfs/devices/disks" % logical)
    if PARTITION.match(parts[3]) or PARTITION.match(device):
        raise Refused("Path validation error: target %s is a partition; a clone target is a whole device" % logical)
    if not os.path.exists(real):
        raise Refused("target device %s not found; rescan the storage adapters" % logical)
    if device in boot_devices():
        raise Refused("target %s is this host's boot device; refusing to clone onto it" % logical)
    return logical, device


# ---------------------------------------------------------------- processes


def spawn(argv, stdout_path=None, stderr_path=None, new_session=False):
    null = os.devnull
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, null, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout_path or null, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, stderr_path or null, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    env = {"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"}
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=new_session)


def capture(argv):
    """Run argv without a shell; return its stdout, or None when it fails."""
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            {"PATH": "/bin:/sbin"},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_CLOSE, read_end),
            ],
        )
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            if sum(len(c) for c in chunks) < 1 << 20:
                chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    return b"".join(chunks).decode("utf-8", "replace")


def clone_write_ops(device):
    """The device's lifetime count of XCOPY clone writes, or None when vsish cannot tell."""
    out = capture([VSISH, "-r", "-e", "cat", "/storage/scsifw/devices/%s/stats" % device])
    if out is None:
        return None
    match = CLONE_WRITE_OPS.search(out)
    if not match:
        return None
    return int(match.group(1), 0)


def process_stat(pid):
    """(state, start time) of pid from /proc, or None where /proc does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_start_time(pid):
    stat_fields = process_stat(pid)
    return None if stat_fields is None else stat_fields[1]


def pid_runs(pid, started):
    """pid exists and, where /proc exists, is no zombie and has the recorded start time."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat_fields = process_stat(pid)
    if stat_fields is None:
        return True
    return stat_fields[0] != "Z" and (started is None or stat_fields[1] == started)


def is_alive(task_id, state):
    """The task's supervisor still runs, proven without /proc: its `alive` file (written by the
    supervisor itself into the private task directory) carries the task's secret and the
    recorded pid, and that pid runs. Only a pid proven so is ever signalled."""
    pid = state.get("pid")
    nonce = state.get("nonce")
    if not isinstance(pid, int) or pid <= 1 or not isinstance(nonce, str) or len(nonce) < 32:
        return False
    if read_task_file(task_id, "alive") != "%s %d\n" % (nonce, pid):
        return False
    return pid_runs(pid, state.get("started"))


def may_run(task_id, state):
    """Whether the clone may still run: proven alive, or started by a wrapper before 1.2.0 (no
    secret, so no proof) whose pid still runs. Such a task is never signalled, but it is not
    reported ended or cleaned while its pid lives either."""
    if is_alive(task_id, state):
        return True
    pid = state.get("pid")
    return "nonce" not in state and isinstance(pid, int) and pid > 1 and pid_runs(pid, state.get("started"))


# ---------------------------------------------------------------- task state
#
# The task root and everything in it must be owned by this user, private (no group or other
# access) and no symlink, checked on every operation: /tmp is world-writable, so a local user
# could otherwise create the root before the first clone after boot and plant task state.


def task_dir(task_id):
    return os.path.join(TASK_ROOT, task_id)


def check_private(path, want_dir):
    info = os.lstat(path)
    kind_ok = stat.S_ISDIR(info.st_mode) if want_dir else stat.S_ISREG(info.st_mode)
    if not kind_ok or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise Refused(
            "%s is not a private %s of this user (owner, mode or type is wrong, or it is a symlink); "
            "nothing was done" % (path, "directory" if want_dir else "file")
        )


def ensure_task_root(create):
    """Checks the task root; `create` makes it (mode 0700) when missing. Never repairs one that
    exists with the wrong owner or mode: that one was made by someone else."""
    if create:
        try:
            os.mkdir(TASK_ROOT, 0o700)
        except FileExistsError:
            pass
    try:
        check_private(TASK_ROOT, True)
    except FileNotFoundError:
        raise Refused("no clone task exists on this host (task root %s is missing)" % TASK_ROOT)


def check_task_dir(task_id):
    try:
        check_private(task_dir(task_id), True)
    except FileNotFoundError:
        raise Refused("Task directory for %s not found" % task_id)


def write_atomic(path, text):
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.rename(tmp, path)


def open_task_file(task_id, name):
    """A read handle on a task file, or None when it does not exist; refuses a symlink or a file
    not owned by this user."""
    try:
        fd = os.open(os.path.join(task_dir(task_id), name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Refused("task %s file %s is a symlink; nothing was done" % (task_id, name))
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise Refused("task %s file %s is not this user's regular file; nothing was done" % (task_id, name))
    return os.fdopen(fd, "rb")


def read_task_file(task_id, name, tail=None):
    handle = open_task_file(task_id, name)
    if handle is None:
        return None
    with handle:
        if tail is not None:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - tail))
        return handle.read(1 << 20).decode("utf-8", "replace")


def load_task(task_id):
    ensure_task_root(False)
    check_task_dir(task_id)
    text = read_task_file(task_id, "task.json")
    if text is None:
        raise Refused("Task directory for %s not found" % task_id)
    try:
        state = json.loads(text)
    except ValueError:
        raise Refused("task %s state is unreadable" % task_id)
    if not isinstance(state, dict):
        raise Refused("task %s state is unreadable" % task_id)
    return state


def exit_code_of(task_id):
    text = read_task_file(task_id, "exitcode")
    return None if text is None else text.strip()[:16]


def remove_task_dir(task_id):
    """Deletes a task directory holding only files: entries are unlinked (a symlink is removed,
    never followed), and anything else in it makes the removal fail."""
    directory = task_dir(task_id)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise Refused("task directory %s holds a directory %r it never creates; nothing more was removed" % (directory, name))
        os.unlink(path)
    os.rmdir(directory)


def task_names():
    return [name for name in os.listdir(TASK_ROOT) if TASK_ID.match(name)]


def collect_stale_tasks():
    now = time.time()
    for name in task_names():
        try:
            if now - os.lstat(task_dir(name)).st_mtime < STALE_TASK_SECONDS:
                continue
            state = load_task(name)
            if exit_code_of(name) is not None or not may_run(name, state):
                remove_task_dir(name)
        except (OSError, Refused):
            continue


def new_task_id():
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return "%s-%s-%s-%s-%s" % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])


def task_status(task_id, state):
    code = exit_code_of(task_id)
    std_err = read_task_file(task_id, "err", TAIL_BYTES) or ""
    if code is None and not may_run(task_id, state):
        code = exit_code_of(task_id)
        if code is None:
            code = LOST_EXIT_CODE
            std_err += "\nthe clone process ended without recording an exit code (killed or host restarted)"
    out = read_task_file(task_id, "out", TAIL_BYTES) or ""
    lines = [line for line in out.replace("\r", "\n").split("\n") if line.strip()]
    xcopy_used = None
    baseline = state.get("cloneWriteOpsAtStart")
    device = state.get("device")
    if isinstance(baseline, int) and isinstance(device, str) and DEVICE_NAME.match(device):
        current = clone_write_ops(device)
        if current is not None:
            xcopy_used = current > baseline
    if read_task_file(task_id, "aborted") is not None:
        std_err += "\nclone aborted on request"
    return {
        "taskId": task_id,
        "pid": state.get("pid") if isinstance(state.get("pid"), int) else 0,
        "exitCode": code or "",
        "lastLine": lines[-1] if lines else "",
        "xcopyUsed": xcopy_used,
        "stdErr": std_err,
    }


# ---------------------------------------------------------------- operations


def started_reply(task_id, pid):
    return {"taskId": task_id, "pid": pid, "xcopyUsed": False}


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def existing_clone(task_id, source, target):
    """The reply for a start whose client-chosen id names a task that already exists: the same
    clone is answered, never started twice; another clone under that id is refused."""
    check_task_dir(task_id)
    state_path = os.path.join(task_dir(task_id), "task.json")
    # A concurrent start of the same id may still be spawning; its state appears atomically.
    if not wait_for(lambda: os.path.exists(state_path), CONCURRENT_START_WAIT_SECONDS):
        raise Refused("task %s exists but has no recorded state; clean it with --task-clean" % task_id)
    state = load_task(task_id)
    if state.get("source") != source or state.get("target") != target:
        raise Refused(
            "task id %s already names the clone of %s onto %s; choose a new id for another clone"
            % (task_id, state.get("source"), state.get("target"))
        )
    log("clone task %s already started (pid %s): not starting it again" % (task_id, state.get("pid")))
    return started_reply(task_id, state.get("pid"))


def rdm_descriptor_name(disk, task_id):
    return "%s-rdmdisk-%s.vmdk" % (disk[: -len(".vmdk")], task_id[:8])


def clone(source, target, task_id=None):
    (source, real_source), (target, device) = source, target
    ensure_task_root(True)
    collect_stale_tasks()
    if task_id is None:
        task_id = new_task_id()
    directory = task_dir(task_id)
    if os.path.lexists(directory):
        return existing_clone(task_id, source, target)
    if len(task_names()) >= MAX_TASKS:
        raise Refused(
            "this host already keeps %d clone tasks; clean finished tasks (--task-clean) before "
            "starting another" % MAX_TASKS
        )
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return existing_clone(task_id, source, target)
    folder, disk = os.path.split(real_source)
    rdm = os.path.join(folder, rdm_descriptor_name(disk, task_id))
    if os.path.lexists(rdm):
        remove_task_dir(task_id)
        raise Refused("RDM descriptor %s already exists; refusing to overwrite it" % rdm)
    nonce = os.urandom(16).hex()
    argv = [
        SUPERVISOR_SHELL, "-c", SUPERVISOR, "vmkfstools-clone", directory, nonce,
        VMKFSTOOLS, "-i", real_source, "-d", "rdm:" + FS_ROOT + "/vmfs/devices/disks/" + device, rdm,
    ]
    baseline = clone_write_ops(device)
    try:
        pid = spawn(argv, os.path.join(directory, "out"), os.path.join(directory, "err"), new_session=True)
    except OSError:
        remove_task_dir(task_id)
        raise
    state = {
        "pid": pid,
        "nonce": nonce,
        "started": process_start_time(pid),
        "source": source,
        "target": target,
        "device": device,
        "rdm": rdm,
        "cloneWriteOpsAtStart": baseline,
        "version": SCRIPT_VERSION,
    }
    write_atomic(os.path.join(directory, "task.json"), json.dumps(state))
    # Answer only once the supervisor has proven itself, so an immediate task-get sees it running.
    wait_for(lambda: os.path.exists(os.path.join(directory, "alive")) or os.path.exists(os.path.join(directory, "exitcode")), CONCURRENT_START_WAIT_SECONDS)
    log("clone task %s started: pid %d, %s -> %s" % (task_id, pid, source, target))
    return started_reply(task_id, pid)


def abort(task_id):
    state = load_task(task_id)
    if exit_code_of(task_id) is None and is_alive(task_id, state):
        pid = state["pid"]
        write_atomic(os.path.join(task_dir(task_id), "aborted"), str(time.time()))
        log("aborting clone task %s (pid %d)" % (task_id, pid))
        for sig, grace in ((signal.SIGTERM, ABORT_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
            # Proven again right before each signal: the pid must still be the supervisor.
            if exit_code_of(task_id) is not None or not is_alive(task_id, state):
                break
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            if wait_for(lambda: exit_code_of(task_id) is not None or not is_alive(task_id, state), grace):
                break
        if exit_code_of(task_id) is None:
            write_atomic(os.path.join(task_dir(task_id), "exitcode"), "%d\n" % (128 + signal.SIGKILL))
    elif exit_code_of(task_id) is None and may_run(task_id, state):
        log("not aborting clone task %s: its pid %s is not proven to be the clone" % (task_id, state.get("pid")))
    return task_status(task_id, state)


def own_rdm_descriptor(task_id, state):
    """The task's RDM descriptor when its recorded path is exactly what this script makes for
    the task (`<disk>-rdmdisk-<id prefix>.vmdk` in a folder of a datastore, no symlink on the
    way) and it is a regular file; None when it is gone. Anything else is refused."""
    rdm = state.get("rdm")
    if not isinstance(rdm, str):
        return None
    folder, name = os.path.split(rdm)
    if (
        os.path.realpath(folder) != folder
        or not folder.startswith(volumes_root() + "/")
        or not name.endswith("-rdmdisk-%s.vmdk" % task_id[:8])
    ):
        raise Refused("task %s names RDM descriptor %s, which this script never creates; nothing was deleted" % (task_id, rdm))
    try:
        info = os.lstat(rdm)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise Refused("RDM descriptor %s is not a regular file; nothing was deleted" % rdm)
    return rdm


def clean(task_id):
    state = load_task(task_id)
    if exit_code_of(task_id) is None and may_run(task_id, state):
        raise Refused("task %s is still running; abort it first with --task-abort" % task_id)
    descriptor = own_rdm_descriptor(task_id, state)
    if descriptor is not None:
        with open(descriptor, "rb") as handle:
            text = handle.read(1 << 16).decode("utf-8", "replace")
        # Only this descriptor's own mapping file (`<descriptor>-rdm*.vmdk`, a regular file) is
        # ever deleted, whatever the descriptor on the shared datastore says.
        own_prefix = os.path.basename(descriptor)[: -len(".vmdk")] + "-"
        for mapping in RDM_EXTENT.findall(text):
            path = os.path.join(os.path.dirname(descriptor), mapping)
            if not (mapping.startswith(own_prefix) and mapping.endswith(".vmdk")):
                log("task %s: not deleting unexpected RDM extent %r" % (task_id, mapping))
                continue
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
                else:
                    log("task %s: not deleting RDM extent %r: not a regular file" % (task_id, mapping))
            except FileNotFoundError:
                pass
        os.unlink(descriptor)
    try:
        remove_task_dir(task_id)
    except OSError as err:
        raise Refused("failed to remove task directory %s after cleanup: %s" % (task_dir(task_id), err))
    log("clone task %s cleaned" % task_id)
    return ""


def execute(operation, args):
    if operation == "version":
        return json.dumps({"version": SCRIPT_VERSION})
    if operation == "clone":
        return json.dumps(clone(args["source"], args["target"], args.get("task_id")))
    if operation == "task_get":
        return json.dumps(task_status(args["task_id"], load_task(args["task_id"])))
    if operation == "task_abort":
        return json.dumps(abort(args["task_id"]))
    if operation == "task_clean":
        return clean(args["task_id"])
    raise Refused("Unknown operation")


def main():
    try:
        operation, args = parse_request(os.environ.get("SSH_ORIGINAL_COMMAND"))
    except Refused as refused:
        log("refused: %s" % refused)
        reply(refused.status, str(refused))
        return 1
    if operation == "probe":
        sys.stdout.write("SSH_OK\n")
        return 0
    try:
        reply(0, execute(operation, args))
    except Refused as refused:
        log("refused: %s" % refused)
        reply(refused.status, str(refused))
    except OSError as err:
        if err.errno == errno.ENOSPC:
            reply(28, "free space is low on the ESXi task directory %s: %s" % (TASK_ROOT, err))
        else:
            reply(1, "%s failed: %s" % (operation, err))
    except Exception as err:
        reply(1, "%s failed: %s: %s" % (operation, type(err).__name__, err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
