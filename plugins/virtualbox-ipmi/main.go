// Command virtualbox-ipmi is the virtualbox-ipmi plugin provider: IPMI-like
// power actions and VM lifecycle actions for local VirtualBox VMs through
// VBoxManage. The logic lives in package vboxplugin; this is the pluginsdk
// wiring.
package main

import (
	"github.com/provisionhq/provision/plugins/virtualbox-ipmi/vboxplugin"
	"github.com/provisionhq/provision/pluginsdk"
)

// version is the provider version; set with -ldflags "-X main.version=...".
var version = "v4.8.0"

// newApp builds the provider's command line around a plugin with opts.
func newApp(opts vboxplugin.Options) *pluginsdk.App {
	def := vboxplugin.Definition(version)
	return pluginsdk.InitApp(vboxplugin.ProviderName, "Provides out-of-band IPMI controls for local VirtualBox VMs", version, &def,
		vboxplugin.New(opts)).WithContent(vboxplugin.Content())
}

func main() { newApp(vboxplugin.Options{}).Main() }
