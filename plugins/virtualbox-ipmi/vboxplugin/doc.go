// Package vboxplugin is the logic of the virtualbox-ipmi plugin provider:
// IPMI-like power actions on local VirtualBox VMs, VM create/start/stop/
// destroy actions, VM creation for new DRP machines that name this plugin
// instance in machine-plugin, and optional import of existing VMs.
//
// Every VirtualBox operation is a VBoxManage command line (§4.3 of the
// reference inventory) run through a Runner: directly, or as
// `sudo -n -u <virtualbox/user> <VBoxManage> ...` when virtualbox/user names
// another account. Commands have timeouts, never carry secrets, and their
// output is parsed defensively (unexpected lines are skipped, never a
// panic).
package vboxplugin
