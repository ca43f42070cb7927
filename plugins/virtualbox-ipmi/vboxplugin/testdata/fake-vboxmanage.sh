#!/bin/bash
# Stand-in for VBoxManage used by the tests. It keeps VM state in files
# under $STATE (substituted by the test when it installs the script) and
# accepts only the exact argument lists the plugin is meant to use (spec
# §4.3); anything else is a syntax error (exit 2), like VBoxManage.
#
# State layout: $STATE/calls        one line per call, arguments joined by |
#               $STATE/vms/<UUID>/  name, state, cpus, memory, vram, macs,
#                                   storagectl, disk, locked (retry count)
#               $STATE/media/<n>    created disks (n = path with / as %)
#               $STATE/fail-<verb>  when present, <verb> fails with its text
#               $STATE/garbage      when present, list/showvminfo add junk
set -u
PATH=/usr/bin:/bin:$PATH
STATE=@STATE@
mkdir -p "$STATE/vms" "$STATE/media"
( IFS='|'; echo "$*" ) >>"$STATE/calls"

die() { echo "VBoxManage: error: $*" >&2; exit 1; }
syntax() { echo "Syntax error: $*" >&2; exit 2; }

[ $# -ge 1 ] || syntax "no command"
verb=$1
if [ -f "$STATE/fail-$verb" ]; then cat "$STATE/fail-$verb" >&2; exit 1; fi

# find_vm <uuid|name> sets VM to the state directory or fails.
find_vm() {
    local want=$1 d
    for d in "$STATE"/vms/*/; do
        [ -d "$d" ] || continue
        d=${d%/}
        if [ "${d##*/}" = "${want^^}" ] || [ "$(cat "$d/name")" = "$want" ]; then VM=$d; return 0; fi
    done
    die "Could not find a registered machine named '$want'"
}
medium_file() { echo "$STATE/media/${1//\//%}"; }

case "$verb" in
list)
    [ $# -eq 2 ] && [ "$2" = vms ] || syntax "list vms"
    [ -f "$STATE/garbage" ] && printf 'WARNING: something odd\n"unterminated {abc}\n\n'
    for d in "$STATE"/vms/*/; do
        [ -d "$d" ] || continue
        d=${d%/}
        id=${d##*/}
        printf '"%s" {%s}\n' "$(cat "$d/name")" "${id,,}"
    done ;;
showvminfo)
    [ $# -eq 3 ] && [ "$3" = --machinereadable ] || syntax "showvminfo <vm> --machinereadable"
    find_vm "$2"
    id=${VM##*/}
    printf 'name="%s"\nUUID="%s"\nVMState="%s"\n' "$(cat "$VM/name")" "${id,,}" "$(cat "$VM/state")"
    [ -f "$STATE/garbage" ] && printf 'this line has no equals sign\n\n"SATA Controller-0-0"="%s"\n=novalue\n' "$(cat "$VM/disk" 2>/dev/null)"
    n=1
    if [ -f "$VM/macs" ]; then
        while read -r mac; do printf 'macaddress%d="%s"\n' "$n" "$mac"; n=$((n+1)); done <"$VM/macs"
    fi
    printf 'memory=%s\ncpus=%s\n' "$(cat "$VM/memory" 2>/dev/null || echo 128)" "$(cat "$VM/cpus" 2>/dev/null || echo 1)" ;;
createvm)
    if [ $# -eq 4 ] && [ "$2" = --name ] && [ "$4" = --register ]; then
        id=$(cat /proc/sys/kernel/random/uuid)
    elif [ $# -eq 6 ] && [ "$2" = --name ] && [ "$4" = --register ] && [ "$5" = --uuid ]; then
        id=$6
    else
        syntax "createvm --name <name> --register [--uuid <uuid>]"
    fi
    name=$3
    [[ "$id" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] || die "Invalid UUID '$id'"
    id=${id^^}
    for d in "$STATE"/vms/*/; do
        [ -d "$d" ] || continue
        [ "$(cat "$d/name")" = "$name" ] && die "Machine settings file '$name.vbox' already exists"
    done
    [ -e "$STATE/vms/$id" ] && die "A machine with UUID {$id} is already registered"
    mkdir -p "$STATE/vms/$id"
    echo "$name" >"$STATE/vms/$id/name"
    echo poweroff >"$STATE/vms/$id/state"
    printf "Virtual machine '%s' is created and registered.\nUUID: %s\nSettings file: '/home/vbox/VirtualBox VMs/%s/%s.vbox'\n" "$name" "${id,,}" "$name" "$name" ;;
storagectl)
    [ $# -eq 8 ] && [ "$3" = --name ] && [ "$4" = "SATA Controller" ] && [ "$5" = --add ] && [ "$6" = sata ] \
        && [ "$7" = --controller ] && [ "$8" = IntelAHCI ] || syntax "storagectl <vm> --name \"SATA Controller\" --add sata --controller IntelAHCI"
    find_vm "$2"
    touch "$VM/storagectl" ;;
createmedium)
    [ $# -eq 6 ] && [ "$2" = disk ] && [ "$3" = --filename ] && [ "$5" = --size ] || syntax "createmedium disk --filename <f> --size <mb>"
    [[ "$6" =~ ^[0-9]+$ ]] || syntax "--size must be a number of MB"
    [[ "$4" == *.vdi ]] || die "unsupported medium format for '$4'"
    f=$(medium_file "$4")
    [ -e "$f" ] && die "Could not create the medium storage unit '$4': already exists"
    echo "$6" >"$f"
    echo "Medium created. UUID: $(cat /proc/sys/kernel/random/uuid)" ;;
storageattach)
    [ $# -eq 12 ] || syntax "storageattach takes 11 arguments"
    [ "$*" = "storageattach $2 --storagectl SATA Controller --port 0 --device 0 --type hdd --medium ${12}" ] \
        || syntax "storageattach <vm> --storagectl \"SATA Controller\" --port 0 --device 0 --type hdd --medium <f>"
    [ "$4" = "SATA Controller" ] || syntax "controller name"
    find_vm "$2"
    [ -f "$VM/storagectl" ] || die "Could not find a controller named 'SATA Controller'"
    [ -e "$(medium_file "${12}")" ] || die "Could not find file for the medium '${12}'"
    echo "${12}" >"$VM/disk" ;;
closemedium)
    [ $# -eq 4 ] && [ "$2" = disk ] && [ "$4" = --delete ] || syntax "closemedium disk <f> --delete"
    f=$(medium_file "$3")
    [ -e "$f" ] || die "Could not find file for the medium '$3'"
    rm -f "$f" ;;
modifyvm)
    [ $# -eq 28 ] || syntax "modifyvm: unexpected argument count $#"
    [[ "$6" =~ ^[0-9]+$ && "${16}" =~ ^[0-9]+$ && "${18}" =~ ^[0-9]+$ ]] || syntax "modifyvm: cpus, memory and vram must be numbers"
    want="modifyvm $2 --ioapic on --cpus $6 --boot1 net --boot2 disk --boot3 none --boot4 none --memory ${16} --vram ${18}"
    want+=" --nic1 hostonly --hostonlyadapter1 vboxnet0 --nictype1 82545EM --nic2 nat --nictype2 82545EM"
    [ "$*" = "$want" ] || syntax "modifyvm arguments: $*"
    find_vm "$2"
    echo "$6" >"$VM/cpus"; echo "${16}" >"$VM/memory"; echo "${18}" >"$VM/vram"
    id=${VM##*/}
    hex=${id//-/}
    printf '080027%s\n080027%s\n' "${hex:0:6}" "${hex:6:6}" >"$VM/macs" ;;
startvm)
    [ $# -eq 2 ] || syntax "startvm <vm>"
    find_vm "$2"
    [ "$(cat "$VM/state")" = running ] && die "The machine '$(cat "$VM/name")' is already locked by a session (or being locked or unlocked)"
    echo running >"$VM/state"
    echo "Waiting for VM \"$2\" to power on..."
    echo "VM \"$2\" has been successfully started." ;;
controlvm)
    [ $# -eq 3 ] && { [ "$3" = poweroff ] || [ "$3" = reset ]; } || syntax "controlvm <vm> poweroff|reset"
    find_vm "$2"
    [ "$(cat "$VM/state")" = running ] || die "Machine '$(cat "$VM/name")' is not currently running"
    if [ "$3" = poweroff ]; then
        echo poweroff >"$VM/state"
        echo "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%" >&2
    else
        echo $(( $(cat "$VM/resets" 2>/dev/null || echo 0) + 1 )) >"$VM/resets"
    fi ;;
unregistervm)
    [ $# -eq 3 ] && [ "$3" = --delete ] || syntax "unregistervm <vm> --delete"
    find_vm "$2"
    [ "$(cat "$VM/state")" = running ] && die "Cannot unregister the machine '$(cat "$VM/name")' while it is locked"
    n=$(cat "$VM/locked" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then
        echo $((n-1)) >"$VM/locked"
        die "Cannot unregister the machine '$(cat "$VM/name")' while it is locked"
    fi
    [ -f "$VM/disk" ] && rm -f "$(medium_file "$(cat "$VM/disk")")"
    rm -rf "$VM"
    echo "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%" >&2 ;;
*)
    syntax "unknown command '$verb'" ;;
esac
exit 0
