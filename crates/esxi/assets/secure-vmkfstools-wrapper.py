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
"""

import errno
import json
import os
import re
import shlex
import signal
import sys
import time

# ESXi constants. Tests substitute only these lines.
SCRIPT_VERSION = "1.1.0"
VMKFSTOOLS = "/bin/vmkfstools"
VSISH = "/bin/vsish"
SUPERVISOR_SHELL = "/bin/sh"
TASK_ROOT = "/tmp/secure-vmkfstools-wrapper"
FS_ROOT = ""
# End of ESXi constants.

MAX_COMMAND_CHARS = 4096
TAIL_BYTES = 4096
ABORT_GRACE_SECONDS = 10.0
CONCURRENT_START_WAIT_SECONDS = 5.0
STALE_TASK_SECONDS = 5 * 24 * 3600
LOST_EXIT_CODE = "255"

TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}\Z")
LEGACY_FRAME = re.compile(r"DS=([^;]*);CMD=(.*)\Z", re.S)
CLONE_WRITE_OPS = re.compile(r"cloneWriteOps\s*:\s*(0x[0-9a-fA-F]+|[0-9]+)", re.I)
RDM_EXTENT = re.compile(r'^\s*RW\s+\d+\s+VMFSRDM(?:PASSTHROUGH)?\s+"([^"/]+)"', re.M)

# The supervisor is a constant program: client-supplied values only ever travel as its argv,
# never as shell source. It exists so that vmkfstools' exit code is recorded after this
# script has exited, without keeping a Python interpreter resident for the whole clone.
# A trap *handler* (not an ignore) lets SIGTERM reach vmkfstools while the shell survives
# to record the exit code.
SUPERVISOR = (
    'd=$1; shift; trap : HUP INT TERM; "$@"; rc=$?; '
    'echo "$rc" >"$d/exitcode.tmp" && mv -f "$d/exitcode.tmp" "$d/exitcode"'
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


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
        syslog.syslog(message)
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
        if not char.isprintable():
            raise Refused("command contains a control or non-printable character")
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
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused("Path validation error: %s must not contain '..'" % what)
    return parts


def source_vmdk_path(path):
    parts = normalised(path, "source VMDK")
    if len(parts) < 4 or parts[:2] != ["vmfs", "volumes"]:
        raise Refused("Path validation error: source VMDK must be /vmfs/volumes/<datastore>/.../<disk>.vmdk")
    if not parts[-1].endswith(".vmdk") or parts[-1].startswith("-"):
        raise Refused("Path validation error: source must be a .vmdk descriptor")
    logical = "/" + "/".join(parts)
    real = os.path.realpath(FS_ROOT + logical)
    if not real.startswith(os.path.realpath(FS_ROOT + "/vmfs/volumes") + "/"):
        raise Refused("Path validation error: source VMDK resolves outside /vmfs/volumes")
    if not os.path.isfile(real):
        raise Refused("source VMDK %s not found" % logical)
    return logical


def target_device_path(path):
    parts = normalised(path, "target device")
    if len(parts) != 4 or parts[:3] != ["vmfs", "devices", "disks"] or not DEVICE_NAME.match(parts[3]):
        raise Refused("Path validation error: target must be /vmfs/devices/disks/<device id>")
    logical = "/" + "/".join(parts)
    if not os.path.exists(FS_ROOT + logical):
        raise Refused("target device %s not found; rescan the storage adapters" % logical)
    return logical


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
        with open("/proc/%d/stat" % pid, "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_start_time(pid):
    stat = process_stat(pid)
    return None if stat is None else stat[1]


def is_alive(state):
    """The recorded process still runs: exists, is not a zombie, and (where /proc exists) has
    the recorded start time, so a reused PID is not mistaken for the clone."""
    pid = state["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = process_stat(pid)
    if stat is None:
        return True
    started = state.get("started")
    return stat[0] != "Z" and (started is None or stat[1] == started)


# ---------------------------------------------------------------- task state


def task_dir(task_id):
    return os.path.join(TASK_ROOT, task_id)


def write_atomic(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.rename(tmp, path)


def read_text(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_tail(path):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def load_task(task_id):
    state = read_text(os.path.join(task_dir(task_id), "task.json"))
    if state is None:
        raise Refused("Task directory for %s not found" % task_id)
    try:
        return json.loads(state)
    except ValueError:
        raise Refused("task %s state is unreadable" % task_id)


def exit_code_of(task_id):
    text = read_text(os.path.join(task_dir(task_id), "exitcode"))
    return None if text is None else text.strip()


def ensure_task_root():
    os.makedirs(TASK_ROOT, mode=0o700, exist_ok=True)
    info = os.lstat(TASK_ROOT)
    if not os.path.isdir(TASK_ROOT) or os.path.islink(TASK_ROOT) or info.st_uid != os.getuid():
        raise Refused("task root %s is not a private directory" % TASK_ROOT)
    os.chmod(TASK_ROOT, 0o700)


def remove_tree(path):
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


def collect_stale_tasks():
    now = time.time()
    for name in os.listdir(TASK_ROOT):
        path = os.path.join(TASK_ROOT, name)
        try:
            if not TASK_ID.match(name) or now - os.lstat(path).st_mtime < STALE_TASK_SECONDS:
                continue
            state = load_task(name)
            if exit_code_of(name) is not None or not is_alive(state):
                remove_tree(path)
        except (OSError, Refused):
            continue


def new_task_id():
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return "%s-%s-%s-%s-%s" % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])


def task_status(task_id, state):
    directory = task_dir(task_id)
    code = exit_code_of(task_id)
    std_err = read_tail(os.path.join(directory, "err"))
    if code is None and not is_alive(state):
        code = exit_code_of(task_id)
        if code is None:
            code = LOST_EXIT_CODE
            std_err += "\nthe clone process ended without recording an exit code (killed or host restarted)"
    lines = [line for line in read_tail(os.path.join(directory, "out")).replace("\r", "\n").split("\n") if line.strip()]
    xcopy_used = None
    baseline = state.get("cloneWriteOpsAtStart")
    if baseline is not None:
        current = clone_write_ops(state["device"])
        if current is not None:
            xcopy_used = current > baseline
    if os.path.exists(os.path.join(directory, "aborted")):
        std_err += "\nclone aborted on request"
    return {
        "taskId": task_id,
        "pid": state["pid"],
        "exitCode": code or "",
        "lastLine": lines[-1] if lines else "",
        "xcopyUsed": xcopy_used,
        "stdErr": std_err,
    }


# ---------------------------------------------------------------- operations


def started_reply(task_id, pid):
    return {"taskId": task_id, "pid": pid, "xcopyUsed": False}


def existing_clone(task_id, source, target):
    """The reply for a start whose client-chosen id names a task that already exists: the same
    clone is answered, never started twice; another clone under that id is refused."""
    deadline = time.monotonic() + CONCURRENT_START_WAIT_SECONDS
    state_path = os.path.join(task_dir(task_id), "task.json")
    # A concurrent start of the same id may still be spawning; its state appears atomically.
    while not os.path.exists(state_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(state_path):
        raise Refused("task %s exists but has no recorded state; clean it with --task-clean" % task_id)
    state = load_task(task_id)
    if state.get("source") != source or state.get("target") != target:
        raise Refused(
            "task id %s already names the clone of %s onto %s; choose a new id for another clone"
            % (task_id, state.get("source"), state.get("target"))
        )
    log("clone task %s already started (pid %d): not starting it again" % (task_id, state["pid"]))
    return started_reply(task_id, state["pid"])


def clone(source, target, task_id=None):
    ensure_task_root()
    collect_stale_tasks()
    if task_id is None:
        task_id = new_task_id()
    directory = task_dir(task_id)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return existing_clone(task_id, source, target)
    device = target.rsplit("/", 1)[1]
    folder, disk = source.rsplit("/", 1)
    rdm = "%s/%s-rdmdisk-%s.vmdk" % (folder, disk[: -len(".vmdk")], task_id[:8])
    argv = [
        SUPERVISOR_SHELL, "-c", SUPERVISOR, "vmkfstools-clone", directory,
        VMKFSTOOLS, "-i", FS_ROOT + source, "-d", "rdm:" + FS_ROOT + target, FS_ROOT + rdm,
    ]
    baseline = clone_write_ops(device)
    try:
        pid = spawn(argv, os.path.join(directory, "out"), os.path.join(directory, "err"), new_session=True)
    except OSError:
        remove_tree(directory)
        raise
    state = {
        "pid": pid,
        "started": process_start_time(pid),
        "source": source,
        "target": target,
        "device": device,
        "rdm": rdm,
        "cloneWriteOpsAtStart": baseline,
        "version": SCRIPT_VERSION,
    }
    write_atomic(os.path.join(directory, "task.json"), json.dumps(state))
    log("clone task %s started: pid %d, %s -> %s" % (task_id, pid, source, target))
    return started_reply(task_id, pid)


def abort(task_id):
    state = load_task(task_id)
    if exit_code_of(task_id) is None and is_alive(state):
        write_atomic(os.path.join(task_dir(task_id), "aborted"), str(time.time()))
        log("aborting clone task %s (pid %d)" % (task_id, state["pid"]))
        for sig, grace in ((signal.SIGTERM, ABORT_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(state["pid"], sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if exit_code_of(task_id) is not None or not is_alive(state):
                    break
                time.sleep(0.05)
            if exit_code_of(task_id) is not None or not is_alive(state):
                break
        if exit_code_of(task_id) is None:
            write_atomic(os.path.join(task_dir(task_id), "exitcode"), "%d\n" % (128 + signal.SIGKILL))
    return task_status(task_id, state)


def clean(task_id):
    state = load_task(task_id)
    if exit_code_of(task_id) is None and is_alive(state):
        raise Refused("task %s is still running; abort it first with --task-abort" % task_id)
    descriptor = FS_ROOT + state["rdm"]
    text = read_text(descriptor)
    if text is not None:
        # Only this descriptor's own mapping file (`<descriptor>-rdm*.vmdk`) is ever deleted, whatever
        # the descriptor on the shared datastore says.
        own_prefix = os.path.basename(descriptor)[: -len(".vmdk")] + "-"
        for mapping in RDM_EXTENT.findall(text):
            if not (mapping.startswith(own_prefix) and mapping.endswith(".vmdk")):
                log("task %s: not deleting unexpected RDM extent %r" % (task_id, mapping))
                continue
            try:
                os.unlink(os.path.join(os.path.dirname(descriptor), mapping))
            except FileNotFoundError:
                pass
        os.unlink(descriptor)
    try:
        remove_tree(task_dir(task_id))
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
