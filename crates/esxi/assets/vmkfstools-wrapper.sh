#!/bin/sh
# vmkfstools-wrapper: the VIB's esxcli backend (namespace `vmkfstools`), installed at
# /opt/redhat/vmkfstools-wrapper, and — the same file, uploaded to a datastore root as
# secure-vmkfstools-wrapper — the SSH method's shell wrapper for hosts whose key line routes
# `DS=<datastore>;CMD=<operation>` to it (see "SSH entry" below). Same operations and replies as
# secure-vmkfstools-wrapper.py:
#   --version | --clone -s <source.vmdk> -t <device> [-i <id>] | --task-get|--task-abort|--task-clean -i <id>
# A clone with -i gets that task id; a repeated start with an existing id answers that task and
# starts nothing. The plugin adds -i only when esxcli was given --task-id; an empty -i means "no id".
# Replies are the esxcli XML envelope (status, message) with a JSON message.
#
# Values: the esxcli plugin places them in an <execute> line a shell may parse, so since 1.2.0 the
# populator sends each one as `hex:<lowercase hex of its UTF-8 bytes>` (shell-inert characters
# only) and this script decodes it; any UTF-8 text without control, separator or invisible
# formatting characters can so be a path. A plain value (older populators) must be printable
# ASCII without quotes, backslash, `$` or backquote. Client values are only ever passed as argv;
# the one `sh -c` below runs a constant program.
#
# Every path read or written is resolved (symlinks followed) and must stay on its datastore; task
# state is trusted only inside a private task root owned by this user, and a pid is signalled only
# when the clone's supervisor has proven with the task's secret that it is that pid (ESXi has no
# /proc to ask). See docs/esxi.md, "Threat model".

# ESXi constants. Tests substitute only these lines.
SCRIPT_VERSION="1.2.0"
VMKFSTOOLS="/bin/vmkfstools"
VSISH="/bin/vsish"
TASK_ROOT="/tmp/vmkfstools-wrapper"
FS_ROOT=""
BOOT_VOLUMES="/bootbank /altbootbank"
PATH=/bin:/sbin:/usr/bin:/usr/sbin
# End of ESXi constants.

export PATH
umask 077
# Byte semantics for lengths, patterns, tr and sed, whatever locale esxcli runs with.
LC_ALL=C
export LC_ALL
LOST_EXIT_CODE=255
STALE_TASK_DAYS=5
MAX_TASKS=64
# `hex:` and two digits per byte of a 1024-byte path; checked before any other work.
MAX_ARG_CHARS=2052
MAX_ARGS=9
# The supervisor records its own pid (`$!` is not it where `setsid` has to fork) and proves it:
# `alive` holds the task's secret and that pid until vmkfstools' exit code is recorded (removed
# after it, so no reader ever sees neither).
SUPERVISOR='d=$1; n=$2; shift 2; echo $$ >"$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"; echo "$n $$" >"$d/alive.tmp" && mv -f "$d/alive.tmp" "$d/alive"; trap : HUP INT TERM; "$@"; rc=$?; echo "$rc" >"$d/exitcode.tmp" && mv -f "$d/exitcode.tmp" "$d/exitcode"; rm -f "$d/alive"'

# Text without control bytes (replies must stay well-formed XML, syslog lines unforged).
printable() { printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037\177'; }

log() { logger -t vmkfstools-wrapper -- "$(printable "$*" | tr '\n\t' '  ' | head -c 512)" 2>/dev/null || :; }

xml_escape() { printable "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

# JSON string body: escapes \ and ", turns newlines/tabs into escapes, drops other control bytes.
json_escape() {
    printf '%s' "$1" | tr -d '\000-\010\013-\037\177' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' |
        awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
}

reply() {
    printf '<?xml version="1.0" ?>\n<output xmlns="http://www.vmware.com/Products/ESX/5.0/esxcli/">\n'
    printf '    <structure typeName="result">\n'
    printf '        <field name="status"><string>%s</string></field>\n' "$1"
    printf '        <field name="message"><string>%s</string></field>\n' "$(xml_escape "$2")"
    printf '    </structure>\n</output>\n'
    exit 0
}

refuse() { log "refused: $1"; reply 1 "$1"; }

# A client word for a message: printable ASCII, at most 64 characters.
excerpt() { printf '%.64s' "$1" | tr -cd ' -~'; }

# Prints the text an esxcli value carries, or fails. `hex:` values are decoded and must be UTF-8
# without control, line/paragraph separator or invisible formatting characters (the rule of
# co_esxi::protocol::is_path_char); plain values must be printable ASCII without quotes,
# backslash, `$` or backquote.
decode_value() {
    case "$1" in
        hex:*) ;;
        *[!\ -~]* | *\'* | *\"* | *\\* | *\`* | *\$*) return 1 ;;
        *) printf '%s' "$1"; return 0 ;;
    esac
    hex=${1#hex:}
    case "$hex" in "" | *[!0-9a-f]*) return 1 ;; esac
    [ $((${#hex} % 2)) -eq 0 ] || return 1
    escapes=$(printf '%s\n' "$hex" | awk '
        function digit(c) { return index("0123456789abcdef", c) - 1 }
        {
            out = ""; need = 0
            for (i = 1; i < length($0); i += 2) {
                b = digit(substr($0, i, 1)) * 16 + digit(substr($0, i + 1, 1))
                if (need == 0) {
                    if (b < 32 || b == 127) exit 1
                    if (b < 128) { cp = b; least = 0 }
                    else if (b >= 194 && b <= 223) { cp = b - 192; need = 1; least = 128 }
                    else if (b >= 224 && b <= 239) { cp = b - 224; need = 2; least = 2048 }
                    else if (b >= 240 && b <= 244) { cp = b - 240; need = 3; least = 65536 }
                    else exit 1
                } else {
                    if (b < 128 || b > 191) exit 1
                    cp = cp * 64 + b - 128; need--
                }
                if (need == 0) {
                    if (cp < least || cp > 1114111 || (cp >= 128 && cp < 160) || cp == 173) exit 1
                    if ((cp >= 8203 && cp <= 8207) || (cp >= 8232 && cp <= 8238)) exit 1
                    if ((cp >= 8288 && cp <= 8303) || (cp >= 55296 && cp <= 57343)) exit 1
                    if (cp == 65279 || (cp >= 65529 && cp <= 65531)) exit 1
                }
                out = out sprintf("\\%03o", b)
            }
            if (need != 0) exit 1
            printf "%s", out
        }') || return 1
    # shellcheck disable=SC2059 # the format is only the octal escapes made above
    printf "$escapes"
}

# An absolute path in canonical form: no empty, `.` or `..` segment, no trailing slash.
canonical() {
    case "$1" in /*) ;; *) return 1 ;; esac
    case "$1" in */ | *//* | */./* | */../* | */. | */..) return 1 ;; esac
}

valid_task_id() {
    case "$1" in
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
            return 0 ;;
    esac
    return 1
}

valid_device_name() {
    case "$1" in "" | [!A-Za-z0-9]* | *[!A-Za-z0-9._:-]*) return 1 ;; esac
    [ ${#1} -le 255 ]
}

# Whether a device name names a partition: its last `:` part is a number (naa.X:1, mpx...:L0:3).
is_partition() {
    case "$1" in *:*) ;; *) return 1 ;; esac
    case "${1##*:}" in "" | *[!0-9]*) return 1 ;; esac
}

boot_devices() {
    for volume in $BOOT_VOLUMES; do
        "$VMKFSTOOLS" -P "$volume" 2>/dev/null |
            sed -n '/^Partitions spanned/,/^[^[:space:]]/ s/^[[:space:]][[:space:]]*\([A-Za-z0-9][A-Za-z0-9._:-]*\):[0-9][0-9]*[[:space:]]*$/\1/p'
    done
}

new_task_id() {
    hex=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    variant=$(printf '%x' $(( (0x$(printf '%s' "$hex" | cut -c17) & 3) | 8 )))
    printf '%s-%s-4%s-%s%s-%s' "$(printf '%s' "$hex" | cut -c1-8)" "$(printf '%s' "$hex" | cut -c9-12)" \
        "$(printf '%s' "$hex" | cut -c14-16)" "$variant" "$(printf '%s' "$hex" | cut -c18-20)" \
        "$(printf '%s' "$hex" | cut -c21-32)"
}

# ---------------------------------------------------------------- private task state

MY_UID=$(id -u)

# Whether $1 is this user's, accessible to nobody else, of type $2 (d or -), and no symlink.
is_private() {
    [ -L "$1" ] && return 1
    [ -e "$1" ] || return 1
    # shellcheck disable=SC2046 # word splitting of ls' columns is the point
    set -- "$2" $(ls -ldn "$1" 2>/dev/null)
    case "$2" in "$1"rw?------ | "$1"rw?------[.+]) ;; *) return 1 ;; esac
    [ "$4" = "$MY_UID" ]
}

# Checks the task root; with `create`, makes it when missing. One made by someone else (wrong
# owner or mode, or a symlink) is refused, never repaired.
check_task_root() {
    if [ "$1" = create ] && [ ! -e "$TASK_ROOT" ] && [ ! -L "$TASK_ROOT" ]; then
        mkdir -m 700 "$TASK_ROOT" 2>/dev/null || [ -e "$TASK_ROOT" ] || reply 28 "cannot create $TASK_ROOT: free space may be low"
    fi
    [ -e "$TASK_ROOT" ] || [ -L "$TASK_ROOT" ] || refuse "no clone task exists on this host (task root $TASK_ROOT is missing)"
    is_private "$TASK_ROOT" d || refuse "$TASK_ROOT is not a private directory of this user (owner, mode or type is wrong, or it is a symlink); nothing was done"
}

TASK_FILES="pid nonce started device rdm source baseline alive exitcode aborted out err"

# Refuses when a task file of $dir exists but is a symlink or not this user's private file.
check_task_files() {
    for name in $TASK_FILES; do
        [ -f "$dir/$name" ] && is_private "$dir/$name" - && continue
        # Missing, or gone since the check: the supervisor removes `alive` when the clone ends.
        { [ -e "$dir/$name" ] || [ -L "$dir/$name" ]; } || continue
        refuse "task file $dir/$name is not a private file of this user; nothing was done"
    done
}

# Prints a task file of $dir (at most 4 KiB from its start); fails when it is missing or unsafe.
state() {
    [ -f "$dir/$1" ] && is_private "$dir/$1" - || return 1
    head -c 4096 "$dir/$1"
}

load_task() {
    valid_task_id "$1" || refuse "task id must be a lowercase UUID"
    check_task_root
    dir="$TASK_ROOT/$1"
    [ -e "$dir" ] || [ -L "$dir" ] || refuse "Task directory $dir not found"
    is_private "$dir" d || refuse "task directory $dir is not a private directory of this user; nothing was done"
    check_task_files
    pid=$(state pid) || refuse "Task directory $dir not found"
    case "$pid" in "" | *[!0-9]*) refuse "task $1 state is unreadable" ;; esac
    nonce=$(state nonce)
    started=$(state started)
    device=$(state device)
    rdm=$(state rdm)
}

exit_code() { state exitcode 2>/dev/null | tr -cd '0-9'; }

start_time() { [ -r "/proc/$1/stat" ] && sed -e 's/.*) //' "/proc/$1/stat" | awk '{ print $20 }'; }

# $pid exists and, where /proc exists, is no zombie and has the recorded start time.
pid_runs() {
    kill -0 "$pid" 2>/dev/null || return 1
    [ -r "/proc/$pid/stat" ] || return 0
    [ "$(sed -e 's/.*) //' "/proc/$pid/stat" | awk '{ print $1 }')" = Z ] && return 1
    [ -z "$started" ] || [ "$(start_time "$pid")" = "$started" ]
}

# Alive = the supervisor proved it is $pid (its `alive` file holds the task's secret and $pid)
# and that pid runs. Only a pid proven so is ever signalled.
is_alive() {
    [ ${#nonce} -ge 32 ] && [ "$(state alive 2>/dev/null)" = "$nonce $pid" ] && pid_runs
}

# Whether the clone may still run: proven alive, or started by a wrapper before 1.2.0 (no secret,
# so no proof) whose pid still runs. Such a task is never signalled, nor reported ended or cleaned
# while its pid lives.
may_run() {
    is_alive && return 0
    [ ! -e "$dir/nonce" ] && [ "$pid" -gt 1 ] && pid_runs
}

# Removes $1, a task directory holding only files (a symlink in it is removed, not followed).
remove_task_dir() {
    for entry in "$1"/* "$1"/.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        if [ -d "$entry" ] && [ ! -L "$entry" ]; then return 1; fi
        rm -f "$entry" || return 1
    done
    rmdir "$1"
}

clone_write_ops() {
    stats=$("$VSISH" -r -e cat "/storage/scsifw/devices/$1/stats" 2>/dev/null) || return 1
    value=$(printf '%s\n' "$stats" | tr 'A-Z' 'a-z' | sed -n 's/.*clonewriteops *: *\(0x[0-9a-f]*\|[0-9]*\).*/\1/p' | head -n 1)
    [ -n "$value" ] || return 1
    printf '%d' "$value"
}

task_json() {
    code=$(exit_code)
    err=$(tail -c 4096 "$dir/err" 2>/dev/null)
    if [ -z "$code" ] && ! may_run; then
        code=$(exit_code)
        if [ -z "$code" ]; then
            code=$LOST_EXIT_CODE
            err="$err
the clone process ended without recording an exit code (killed or host restarted)"
        fi
    fi
    [ -f "$dir/aborted" ] && err="$err
clone aborted on request"
    last=$(tail -c 4096 "$dir/out" 2>/dev/null | tr '\r' '\n' | grep -v '^[[:space:]]*$' | tail -n 1)
    xcopy=null
    baseline=$(state baseline 2>/dev/null | tr -cd '0-9')
    if [ -n "$baseline" ] && valid_device_name "$device" && now=$(clone_write_ops "$device"); then
        if [ "$now" -gt "$baseline" ]; then xcopy=true; else xcopy=false; fi
    fi
    printf '{"taskId": "%s", "pid": %s, "exitCode": "%s", "lastLine": "%s", "xcopyUsed": %s, "stdErr": "%s"}' \
        "$task_id" "$pid" "$code" "$(json_escape "$last")" "$xcopy" "$(json_escape "$err")"
}

# ---------------------------------------------------------------- operations

# Answers a start whose client-chosen id names an existing task: the same clone is answered,
# never started twice; another clone under that id is refused.
existing_clone() {
    is_private "$dir" d || refuse "task directory $dir is not a private directory of this user; nothing was done"
    check_task_files
    tries=0
    # A concurrent start of the same id may still be spawning the supervisor.
    while [ ! -f "$dir/pid" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1 2>/dev/null || sleep 1
        tries=$((tries + 1))
    done
    [ -f "$dir/pid" ] || refuse "task $task_id exists but has no recorded state; clean it with --task-clean"
    [ "$(state source)" = "$source" ] && [ "$(state device)" = "$device" ] ||
        refuse "task id $task_id already names another clone; choose a new id for this one"
    pid=$(state pid | tr -cd '0-9')
    log "clone task $task_id already started (pid $pid): not starting it again"
    reply 0 "{\"taskId\": \"$task_id\", \"pid\": $pid, \"xcopyUsed\": false}"
}

# Prints the folder datastore $1 resolves to: /vmfs/volumes/<name> links to /vmfs/volumes/<uuid>,
# and it must resolve to a direct child of /vmfs/volumes.
datastore_root() {
    volumes=$(readlink -f "$FS_ROOT/vmfs/volumes") || return 1
    root=$(readlink -f "$FS_ROOT/vmfs/volumes/$1") && [ "${root%/*}" = "$volumes" ] &&
        [ "$root" != "$volumes" ] && [ -d "$root" ] || return 1
    printf '%s' "$root"
}

# Resolves $source and $target (set: real_source, device), refusing anything that leaves its tree.
resolve_clone_paths() {
    canonical "$source" || refuse "Path validation error: source VMDK must be an absolute path without empty, '.' or '..' segments"
    canonical "$target" || refuse "Path validation error: target device must be an absolute path without empty, '.' or '..' segments"
    case "$source" in
        /vmfs/volumes/*/*.[vV][mM][dD][kK]) ;;
        *) refuse "Path validation error: source VMDK must be /vmfs/volumes/<datastore>/.../<disk>.vmdk" ;;
    esac
    disk=${source##*/}
    case "$disk" in -* | .[vV][mM][dD][kK]) refuse "Path validation error: source must be a .vmdk descriptor" ;; esac
    rest=${source#/vmfs/volumes/}
    datastore=${rest%%/*}
    datastore_dir=$(datastore_root "$datastore") ||
        refuse "Path validation error: datastore $datastore does not resolve to a datastore under /vmfs/volumes"
    real_source=$(readlink -f "$FS_ROOT$source") && [ -f "$real_source" ] || refuse "source VMDK $source not found"
    case "$real_source" in
        "$datastore_dir"/*) ;;
        *) refuse "Path validation error: source VMDK resolves outside its datastore /vmfs/volumes/$datastore" ;;
    esac
    disk=${real_source##*/}
    case "$disk" in
        -* | .[vV][mM][dD][kK]) refuse "Path validation error: source VMDK resolves to a file that is not a .vmdk descriptor" ;;
        *.[vV][mM][dD][kK]) ;;
        *) refuse "Path validation error: source VMDK resolves to a file that is not a .vmdk descriptor" ;;
    esac

    case "$target" in /vmfs/devices/disks/*) ;; *) refuse "Path validation error: target must be /vmfs/devices/disks/<device id>" ;; esac
    device=${target#/vmfs/devices/disks/}
    valid_device_name "$device" || refuse "Path validation error: target must be /vmfs/devices/disks/<device id>"
    disks=$(readlink -f "$FS_ROOT/vmfs/devices/disks") || refuse "/vmfs/devices/disks is missing"
    [ -e "$FS_ROOT$target" ] || refuse "target device $target not found; rescan the storage adapters"
    real_target=$(readlink -f "$FS_ROOT$target") && [ "${real_target%/*}" = "$disks" ] ||
        refuse "Path validation error: target $target resolves outside /vmfs/devices/disks"
    resolved=${real_target##*/}
    valid_device_name "$resolved" || refuse "Path validation error: target $target resolves outside /vmfs/devices/disks"
    if is_partition "$device" || is_partition "$resolved"; then
        refuse "Path validation error: target $target is a partition; a clone target is a whole device"
    fi
    for boot in $(boot_devices); do
        [ "$boot" = "$resolved" ] && refuse "target $target is this host's boot device; refusing to clone onto it"
    done
    device=$resolved
}

do_clone() {
    resolve_clone_paths
    check_task_root create
    find "$TASK_ROOT" -mindepth 1 -maxdepth 1 -type d -mtime +"$STALE_TASK_DAYS" -exec sh -c \
        '[ -f "$1/exitcode" ] && [ ! -L "$1/exitcode" ] && rm -rf "$1"' stale {} \; 2>/dev/null
    if [ -n "$task_id" ]; then
        valid_task_id "$task_id" || refuse "task id must be a lowercase UUID"
        dir="$TASK_ROOT/$task_id"
        { [ -e "$dir" ] || [ -L "$dir" ]; } && existing_clone
    else
        task_id=$(new_task_id)
        dir="$TASK_ROOT/$task_id"
    fi
    # shellcheck disable=SC2046 # counting the task directories
    set -- $(find "$TASK_ROOT" -mindepth 1 -maxdepth 1 -name '*-*-*-*-*' 2>/dev/null)
    [ $# -lt "$MAX_TASKS" ] ||
        refuse "this host already keeps $MAX_TASKS clone tasks; clean finished tasks (--task-clean) before starting another"
    if ! mkdir -m 700 "$dir" 2>/dev/null; then
        [ -d "$dir" ] && existing_clone
        reply 28 "cannot create task directory $dir: free space may be low"
    fi
    rdm="${real_source%/*}/${disk%.[vV][mM][dD][kK]}-rdmdisk-${task_id%%-*}.vmdk"
    if [ -e "$rdm" ] || [ -L "$rdm" ]; then
        remove_task_dir "$dir"
        refuse "RDM descriptor $rdm already exists; refusing to overwrite it"
    fi
    nonce=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    { printf '%s' "$source" >"$dir/source" && printf '%s' "$device" >"$dir/device" &&
        printf '%s' "$rdm" >"$dir/rdm" && printf '%s' "$nonce" >"$dir/nonce"; } ||
        reply 28 "cannot write task state in $dir: free space may be low"
    clone_write_ops "$device" >"$dir/baseline" || rm -f "$dir/baseline"
    setsid sh -c "$SUPERVISOR" vmkfstools-clone "$dir" "$nonce" "$VMKFSTOOLS" -i "$real_source" \
        -d "rdm:$FS_ROOT/vmfs/devices/disks/$device" "$rdm" </dev/null >"$dir/out" 2>"$dir/err" &
    tries=0
    while { [ ! -f "$dir/alive" ] && [ ! -f "$dir/exitcode" ]; } && [ "$tries" -lt 50 ]; do
        sleep 0.1 2>/dev/null || sleep 1
        tries=$((tries + 1))
    done
    [ -f "$dir/pid" ] || reply 1 "the clone supervisor did not start; see $dir/err"
    pid=$(state pid | tr -cd '0-9')
    started=$(start_time "$pid")
    printf '%s' "$started" >"$dir/started"
    log "clone task $task_id started: pid $pid, $source -> $target"
    reply 0 "{\"taskId\": \"$task_id\", \"pid\": $pid, \"xcopyUsed\": false}"
}

do_abort() {
    load_task "$task_id"
    if [ -z "$(exit_code)" ] && is_alive; then
        date +%s >"$dir/aborted"
        log "aborting clone task $task_id (pid $pid)"
        for sig in TERM KILL; do
            # Proven again right before each signal: the pid must still be the supervisor.
            [ -z "$(exit_code)" ] && is_alive || break
            # Signal the whole process group. dash needs `--` before a negative pid; busybox (ESXi's
            # shell) rejects `--` but accepts `-s SIG -pid`.
            kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "-$pid" 2>/dev/null || break
            tries=0
            while [ "$tries" -lt 100 ] && [ -z "$(exit_code)" ] && is_alive; do
                sleep 0.1 2>/dev/null || sleep 1
                tries=$((tries + 1))
            done
            [ -n "$(exit_code)" ] || ! is_alive && break
        done
        [ -n "$(exit_code)" ] || echo 137 >"$dir/exitcode"
    elif [ -z "$(exit_code)" ] && may_run; then
        log "not aborting clone task $task_id: its pid $pid is not proven to be the clone"
    fi
    reply 0 "$(task_json)"
}

# Whether $rdm is exactly what do_clone makes for this task: `<disk>-rdmdisk-<id prefix>.vmdk`
# in a folder of a datastore with no symlink on the way.
own_rdm_path() {
    folder=${rdm%/*}
    volumes=$(readlink -f "$FS_ROOT/vmfs/volumes") || return 1
    [ "$(readlink -f "$folder")" = "$folder" ] || return 1
    case "$folder" in "$volumes"/*) ;; *) return 1 ;; esac
    case "${rdm##*/}" in *-rdmdisk-"${task_id%%-*}".vmdk) ;; *) return 1 ;; esac
}

do_clean() {
    load_task "$task_id"
    if [ -z "$(exit_code)" ] && may_run; then
        refuse "task $task_id is still running; abort it first with --task-abort"
    fi
    if [ -n "$rdm" ] && { [ -e "$rdm" ] || [ -L "$rdm" ]; }; then
        own_rdm_path || refuse "task $task_id names RDM descriptor $rdm, which this wrapper never creates; nothing was deleted"
        [ -f "$rdm" ] && [ ! -L "$rdm" ] || refuse "RDM descriptor $rdm is not a regular file; nothing was deleted"
        mapping=$(head -c 65536 "$rdm" | sed -n 's/^[[:space:]]*RW[[:space:]][[:space:]]*[0-9][0-9]*[[:space:]][[:space:]]*VMFSRDM[A-Z]*[[:space:]][[:space:]]*"\([^"/]*\)".*/\1/p' | head -n 1)
        # Only this descriptor's own mapping file is deleted, whatever the shared datastore says.
        own=${rdm##*/}
        case "$mapping" in
            "${own%.vmdk}"-*.vmdk)
                if [ -f "${rdm%/*}/$mapping" ] && [ ! -L "${rdm%/*}/$mapping" ]; then
                    rm -f "${rdm%/*}/$mapping"
                else
                    log "task $task_id: not deleting RDM extent $mapping: not a regular file"
                fi ;;
            "") ;;
            *) log "task $task_id: not deleting unexpected RDM extent $mapping" ;;
        esac
        rm -f "$rdm"
    fi
    remove_task_dir "$dir" || refuse "failed to remove task directory $dir after cleanup"
    log "clone task $task_id cleaned"
    reply 0 ""
}

# ---------------------------------------------------------------- SSH entry

# Run without arguments by a restricted SSH key, the request is SSH_ORIGINAL_COMMAND. Forklift's
# key line (`sh -c '…'` routing `DS=<datastore>;CMD=<operation>`) runs
# `sh /vmfs/volumes/$DS/secure-vmkfstools-wrapper` with only the CMD part, its DS unvalidated and
# word-split; a line naming this script directly hands over the whole frame. Either way:
# - the datastore served is the one the script was run from, which must be named as
#   /vmfs/volumes/<one segment>/secure-vmkfstools-wrapper and resolve to a direct child of
#   /vmfs/volumes, so a traversing or split DS never reaches a copy of this script that acts;
# - a frame's DS must name that same datastore (an empty DS is the connectivity probe);
# - the request is option words and `hex:` values only (letters, digits, `-:./_`, single spaces),
#   split on spaces with globbing off: no quoting exists that could be got wrong, whatever the
#   shell in front of it did to the text.
SSH_SCRIPT_NAME="secure-vmkfstools-wrapper"
MAX_COMMAND_CHARS=4096

if [ $# -eq 0 ] && [ -n "${SSH_ORIGINAL_COMMAND+set}" ]; then
    request=$SSH_ORIGINAL_COMMAND
    [ ${#request} -le "$MAX_COMMAND_CHARS" ] || refuse "command longer than $MAX_COMMAND_CHARS characters"
    case "$0" in
        "$FS_ROOT"/vmfs/volumes/*/"$SSH_SCRIPT_NAME") own=${0#"$FS_ROOT"/vmfs/volumes/}; own=${own%/"$SSH_SCRIPT_NAME"} ;;
        *) own="" ;;
    esac
    case "$own" in
        "" | . | .. | */*) refuse "this script serves SSH only as /vmfs/volumes/<datastore>/$SSH_SCRIPT_NAME; it was run as $(excerpt "$0")" ;;
    esac
    datastore_root "$own" >/dev/null ||
        refuse "datastore $(excerpt "$own") of this script does not resolve to a datastore under /vmfs/volumes"
    case "$request" in
        DS=*)
            case "$request" in *\;CMD=*) ;; *) refuse "a framed request is DS=<datastore>;CMD=<operation>" ;; esac
            framed=${request%%;*}
            framed=${framed#DS=}
            request=${request#*;}
            case "$request" in CMD=*) request=${request#CMD=} ;; *) refuse "a framed request is DS=<datastore>;CMD=<operation>" ;; esac
            if [ -z "$framed" ]; then printf 'SSH_OK\n'; exit 0; fi
            [ "$framed" = "$own" ] || refuse "DS= names another datastore than the one this script serves"
            ;;
    esac
    if [ "$request" = --probe ]; then printf 'SSH_OK\n'; exit 0; fi
    case "$request" in
        "" | *[!A-Za-z0-9:./_\ -]*)
            refuse "the request must be option words and hex: values (letters, digits, -:./_ and single spaces)" ;;
    esac
    set -f
    IFS=" "
    # shellcheck disable=SC2086 # splitting the checked request into its words is the point
    set -- $request
    unset IFS
    set +f
fi

[ $# -le "$MAX_ARGS" ] || refuse "too many arguments"
operation=""
source=""
target=""
task_id=""
while [ $# -gt 0 ]; do
    [ ${#1} -le "$MAX_ARG_CHARS" ] || refuse "argument longer than $MAX_ARG_CHARS characters"
    case "$1" in
        --clone | --task-get | --task-abort | --task-clean | --version | -v)
            [ -z "$operation" ] || refuse "only one operation per call"
            operation=$1 ;;
        -s | --source-vmdk | -t | --target-lun | -i | --task-id)
            [ $# -ge 2 ] || refuse "option $1 needs a value"
            [ ${#2} -le "$MAX_ARG_CHARS" ] || refuse "argument longer than $MAX_ARG_CHARS characters"
            value=$(decode_value "$2") ||
                refuse "Path validation error: option $1 has a value that is neither hex:<UTF-8 text without control characters> nor plain ASCII without quotes, backslash, \$ and backquote"
            case "$1" in
                -s | --source-vmdk) [ -z "$source" ] || refuse "option $1 given twice"; source=$value ;;
                -t | --target-lun) [ -z "$target" ] || refuse "option $1 given twice"; target=$value ;;
                *) [ -z "$task_id" ] || refuse "option $1 given twice"; task_id=$value ;;
            esac
            shift ;;
        --output)
            # `--version --output simple` prints the bare version (build tooling).
            [ "$2" = simple ] && [ "$operation" = --version ] && { printf '%s\n' "$SCRIPT_VERSION"; exit 0; }
            [ "$2" = xml ] || refuse "Unknown option: --output $(excerpt "$2")"
            shift ;;
        *) refuse "Unknown option: $(excerpt "$1")" ;;
    esac
    shift
done

case "$operation" in
    --version | -v) [ -z "$source$target$task_id" ] || refuse "--version takes no options"
        reply 0 "{\"version\": \"$SCRIPT_VERSION\"}" ;;
    --clone) [ -n "$source" ] && [ -n "$target" ] || refuse "--clone needs -s <source-vmdk> and -t <target-lun> (and optionally -i <task-id>)"
        do_clone ;;
    --task-get | --task-abort | --task-clean)
        [ -n "$task_id" ] && [ -z "$source$target" ] || refuse "-i (task-id) is required for ${operation#--}"
        case "$operation" in
            --task-get) load_task "$task_id"; reply 0 "$(task_json)" ;;
            --task-abort) do_abort ;;
            --task-clean) do_clean ;;
        esac ;;
    *) refuse "Usage: vmkfstools-wrapper --version | --clone -s <source-vmdk> -t <target-lun> [-i <task-id>] | --task-get|--task-abort|--task-clean -i <task-id>" ;;
esac
