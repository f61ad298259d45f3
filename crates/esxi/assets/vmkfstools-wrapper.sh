#!/bin/sh
# vmkfstools-wrapper: the VIB's esxcli backend (namespace `vmkfstools`), installed at
# /opt/redhat/vmkfstools-wrapper. Same operations and replies as secure-vmkfstools-wrapper.py:
#   --version | --clone -s <source.vmdk> -t <device> [-i <id>] | --task-get|--task-abort|--task-clean -i <id>
# A clone with -i gets that task id; a repeated start with an existing id answers that task and
# starts nothing. The plugin adds -i only when esxcli was given --task-id; an empty -i means "no id".
# Replies are the esxcli XML envelope (status, message) with a JSON message. Client values are
# only ever passed as argv; the one `sh -c` below runs a constant program.

# ESXi constants. Tests substitute only these lines.
SCRIPT_VERSION="1.1.0"
VMKFSTOOLS="/bin/vmkfstools"
VSISH="/bin/vsish"
TASK_ROOT="/tmp/vmkfstools-wrapper"
FS_ROOT=""
PATH=/bin:/sbin:/usr/bin:/usr/sbin
# End of ESXi constants.

export PATH
umask 077
LOST_EXIT_CODE=255
STALE_TASK_DAYS=5
# The supervisor records its own pid: `$!` is not it where `setsid` has to fork.
SUPERVISOR='d=$1; shift; echo $$ >"$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"; trap : HUP INT TERM; "$@"; rc=$?; echo "$rc" >"$d/exitcode.tmp" && mv -f "$d/exitcode.tmp" "$d/exitcode"'

log() { logger -t vmkfstools-wrapper -- "$*" 2>/dev/null || :; }

xml_escape() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

# JSON string body: escapes \ and ", turns newlines/tabs into escapes, drops other control bytes.
json_escape() {
    printf '%s' "$1" | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' |
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

has_bad_chars() {
    case "$1" in
        *[![:print:]]* | *\'* | *\"* | *\\* | *\`* | *\$*) return 0 ;;
    esac
    return 1
}

# Prints the normalised path (repeated and trailing slashes, `.` segments removed) or fails.
normalise() {
    case "$1" in /*) ;; *) return 1 ;; esac
    out=""
    rest="$1/"
    while [ -n "$rest" ]; do
        part=${rest%%/*}
        rest=${rest#*/}
        case "$part" in
            "" | .) ;;
            ..) return 1 ;;
            *) out="$out/$part" ;;
        esac
    done
    printf '%s' "$out"
}

valid_task_id() {
    case "$1" in
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
            return 0 ;;
    esac
    return 1
}

new_task_id() {
    hex=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    variant=$(printf '%x' $(( (0x$(printf '%s' "$hex" | cut -c17) & 3) | 8 )))
    printf '%s-%s-4%s-%s%s-%s' "$(printf '%s' "$hex" | cut -c1-8)" "$(printf '%s' "$hex" | cut -c9-12)" \
        "$(printf '%s' "$hex" | cut -c14-16)" "$variant" "$(printf '%s' "$hex" | cut -c18-20)" \
        "$(printf '%s' "$hex" | cut -c21-32)"
}

start_time() { [ -r "/proc/$1/stat" ] && sed -e 's/.*) //' "/proc/$1/stat" | awk '{ print $20 }'; }

# Alive = the recorded pid exists and, where /proc exists, is not a zombie and has the recorded
# start time (so a reused PID is not mistaken for the clone).
is_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    [ "$(sed -e 's/.*) //' "/proc/$1/stat" | awk '{ print $1 }')" = Z ] && return 1
    [ -z "$2" ] || [ "$(start_time "$1")" = "$2" ]
}

clone_write_ops() {
    stats=$("$VSISH" -r -e cat "/storage/scsifw/devices/$1/stats" 2>/dev/null) || return 1
    value=$(printf '%s\n' "$stats" | tr 'A-Z' 'a-z' | sed -n 's/.*clonewriteops *: *\(0x[0-9a-f]*\|[0-9]*\).*/\1/p' | head -n 1)
    [ -n "$value" ] || return 1
    printf '%d' "$value"
}

load_task() {
    valid_task_id "$1" || refuse "task id must be a lowercase UUID"
    dir="$TASK_ROOT/$1"
    [ -f "$dir/pid" ] || refuse "Task directory $dir not found"
    pid=$(cat "$dir/pid")
    started=$(cat "$dir/started" 2>/dev/null)
    device=$(cat "$dir/device" 2>/dev/null)
    rdm=$(cat "$dir/rdm" 2>/dev/null)
}

exit_code() { [ -f "$dir/exitcode" ] && tr -d ' \n' <"$dir/exitcode"; }

task_json() {
    code=$(exit_code)
    err=$(tail -c 4096 "$dir/err" 2>/dev/null)
    if [ -z "$code" ] && ! is_alive "$pid" "$started"; then
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
    if [ -f "$dir/baseline" ] && now=$(clone_write_ops "$device"); then
        if [ "$now" -gt "$(cat "$dir/baseline")" ]; then xcopy=true; else xcopy=false; fi
    fi
    printf '{"taskId": "%s", "pid": %s, "exitCode": "%s", "lastLine": "%s", "xcopyUsed": %s, "stdErr": "%s"}' \
        "$task_id" "$pid" "$code" "$(json_escape "$last")" "$xcopy" "$(json_escape "$err")"
}

# Answers a start whose client-chosen id names an existing task: the same clone is answered,
# never started twice; another clone under that id is refused.
existing_clone() {
    tries=0
    # A concurrent start of the same id may still be spawning the supervisor.
    while [ ! -f "$dir/pid" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1 2>/dev/null || sleep 1
        tries=$((tries + 1))
    done
    [ -f "$dir/pid" ] || refuse "task $task_id exists but has no recorded state; clean it with --task-clean"
    [ "$(cat "$dir/source" 2>/dev/null)" = "$source" ] && [ "$(cat "$dir/device" 2>/dev/null)" = "$device" ] ||
        refuse "task id $task_id already names another clone; choose a new id for this one"
    log "clone task $task_id already started (pid $(cat "$dir/pid")): not starting it again"
    reply 0 "{\"taskId\": \"$task_id\", \"pid\": $(cat "$dir/pid"), \"xcopyUsed\": false}"
}

do_clone() {
    has_bad_chars "$source$target" && refuse "Path validation error: quotes, backslashes, \$ and control characters are not allowed"
    source=$(normalise "$source") || refuse "Path validation error: source VMDK must be an absolute path without '..'"
    target=$(normalise "$target") || refuse "Path validation error: target device must be an absolute path without '..'"
    case "$source" in
        /vmfs/volumes/*/*/*.vmdk | /vmfs/volumes/*/*.vmdk) ;;
        *) refuse "Path validation error: source VMDK must be /vmfs/volumes/<datastore>/.../<disk>.vmdk" ;;
    esac
    device=${target#/vmfs/devices/disks/}
    case "$target" in /vmfs/devices/disks/*) ;; *) refuse "Path validation error: target must be /vmfs/devices/disks/<device id>" ;; esac
    case "$device" in "" | */* | -* | *[!A-Za-z0-9._:-]*) refuse "Path validation error: target must be /vmfs/devices/disks/<device id>" ;; esac
    [ -f "$FS_ROOT$source" ] || refuse "source VMDK $source not found"
    [ -e "$FS_ROOT$target" ] || refuse "target device $target not found; rescan the storage adapters"

    mkdir -p "$TASK_ROOT" 2>/dev/null && chmod 700 "$TASK_ROOT" || reply 28 "cannot create $TASK_ROOT: free space may be low"
    find "$TASK_ROOT" -mindepth 1 -maxdepth 1 -type d -mtime +"$STALE_TASK_DAYS" -exec sh -c \
        '[ -f "$1/exitcode" ] && rm -rf "$1"' stale {} \; 2>/dev/null
    if [ -n "$task_id" ]; then
        valid_task_id "$task_id" || refuse "task id must be a lowercase UUID"
        dir="$TASK_ROOT/$task_id"
        [ -e "$dir" ] && existing_clone
    else
        task_id=$(new_task_id)
        dir="$TASK_ROOT/$task_id"
    fi
    if ! mkdir -m 700 "$dir" 2>/dev/null; then
        [ -d "$dir" ] && existing_clone
        reply 28 "cannot create task directory $dir: free space may be low"
    fi
    disk=${source##*/}
    rdm="${source%/*}/${disk%.vmdk}-rdmdisk-$(printf '%s' "$task_id" | cut -c1-8).vmdk"
    { printf '%s' "$source" >"$dir/source" && printf '%s' "$device" >"$dir/device" && printf '%s' "$rdm" >"$dir/rdm"; } ||
        reply 28 "cannot write task state in $dir: free space may be low"
    clone_write_ops "$device" >"$dir/baseline" || rm -f "$dir/baseline"
    setsid sh -c "$SUPERVISOR" vmkfstools-clone "$dir" "$VMKFSTOOLS" -i "$FS_ROOT$source" -d "rdm:$FS_ROOT$target" \
        "$FS_ROOT$rdm" </dev/null >"$dir/out" 2>"$dir/err" &
    tries=0
    while [ ! -f "$dir/pid" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1 2>/dev/null || sleep 1
        tries=$((tries + 1))
    done
    [ -f "$dir/pid" ] || reply 1 "the clone supervisor did not start; see $dir/err"
    pid=$(cat "$dir/pid")
    started=$(start_time "$pid")
    printf '%s' "$started" >"$dir/started"
    log "clone task $task_id started: pid $pid, $source -> $target"
    reply 0 "{\"taskId\": \"$task_id\", \"pid\": $pid, \"xcopyUsed\": false}"
}

do_abort() {
    load_task "$task_id"
    if [ -z "$(exit_code)" ] && is_alive "$pid" "$started"; then
        date +%s >"$dir/aborted"
        log "aborting clone task $task_id (pid $pid)"
        for sig in TERM KILL; do
            # Signal the whole process group. dash needs `--` before a negative pid; busybox (ESXi's
            # shell) rejects `--` but accepts `-s SIG -pid`.
            kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "-$pid" 2>/dev/null || break
            tries=0
            while [ "$tries" -lt 100 ] && [ -z "$(exit_code)" ] && is_alive "$pid" "$started"; do
                sleep 0.1 2>/dev/null || sleep 1
                tries=$((tries + 1))
            done
            [ -n "$(exit_code)" ] || ! is_alive "$pid" "$started" && break
        done
        [ -n "$(exit_code)" ] || echo 137 >"$dir/exitcode"
    fi
    reply 0 "$(task_json)"
}

do_clean() {
    load_task "$task_id"
    if [ -z "$(exit_code)" ] && is_alive "$pid" "$started"; then
        refuse "task $task_id is still running; abort it first with --task-abort"
    fi
    if [ -n "$rdm" ] && [ -f "$FS_ROOT$rdm" ]; then
        mapping=$(sed -n 's/^[[:space:]]*RW[[:space:]][[:space:]]*[0-9][0-9]*[[:space:]][[:space:]]*VMFSRDM[A-Z]*[[:space:]][[:space:]]*"\([^"/]*\)".*/\1/p' "$FS_ROOT$rdm")
        # Only this descriptor's own mapping file is deleted, whatever the shared datastore says.
        own=${rdm##*/}
        case "$mapping" in
            "${own%.vmdk}"-*.vmdk) rm -f "${FS_ROOT}${rdm%/*}/$mapping" ;;
            "") ;;
            *) log "task $task_id: not deleting unexpected RDM extent $mapping" ;;
        esac
        rm -f "$FS_ROOT$rdm"
    fi
    rm -rf "$dir" || refuse "failed to remove task directory $dir after cleanup"
    log "clone task $task_id cleaned"
    reply 0 ""
}

operation=""
source=""
target=""
task_id=""
while [ $# -gt 0 ]; do
    case "$1" in
        --clone | --task-get | --task-abort | --task-clean | --version | -v)
            [ -z "$operation" ] || refuse "only one operation per call"
            operation=$1 ;;
        -s | --source-vmdk | -t | --target-lun | -i | --task-id)
            [ $# -ge 2 ] || refuse "option $1 needs a value"
            case "$1" in
                -s | --source-vmdk) [ -z "$source" ] || refuse "option $1 given twice"; source=$2 ;;
                -t | --target-lun) [ -z "$target" ] || refuse "option $1 given twice"; target=$2 ;;
                *) [ -z "$task_id" ] || refuse "option $1 given twice"; task_id=$2 ;;
            esac
            shift ;;
        --output)
            # `--version --output simple` prints the bare version (build tooling).
            [ "$2" = simple ] && [ "$operation" = --version ] && { printf '%s\n' "$SCRIPT_VERSION"; exit 0; }
            [ "$2" = xml ] || refuse "Unknown option: --output $2"
            shift ;;
        *) refuse "Unknown option: $(printf '%.64s' "$1")" ;;
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
