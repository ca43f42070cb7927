// Package bmc holds what every ipmi plugin driver shares: the validated
// request a machine action becomes, the Driver interface, the action names,
// the structured power status, and the models.Error constructors that give
// each failure a meaningful HTTP code (400 bad params, 401 credentials
// refused, 501 not implemented by the mode, 502 the BMC answered an error,
// 504 the BMC did not answer).
package bmc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"

	"github.com/provisionhq/provision/models"
)

// The 24 machine actions of DRP's ipmi plugin, with DRP's names and casing.
const (
	PowerOn               = "poweron"
	PowerOff              = "poweroff"
	PowerCycle            = "powercycle"
	NextBootCD            = "nextbootcd"
	NextBootPXE           = "nextbootpxe"
	NextBootDisk          = "nextbootdisk"
	ForceBootPXE          = "forcebootpxe"
	ForceBootDisk         = "forcebootdisk"
	Identify              = "identify"
	PowerStatus           = "powerstatus"
	Status                = "status"
	GetInfo               = "getInfo"
	GetBios               = "getBios"
	GetMemory             = "getMemory"
	GetStorage            = "getStorage"
	GetSimpleStorage      = "getSimpleStorage"
	GetProcessor          = "getProcessor"
	GetNetworkInterfaces  = "getNetworkInterfaces"
	GetEthernetInterfaces = "getEthernetInterfaces"
	GetSecureBoot         = "getSecureBoot"
	GetBoot               = "getBoot"
	MountVirtualMedia     = "mountVirtualMedia"
	UnmountVirtualMedia   = "unmountVirtualMedia"
	StatusVirtualMedia    = "statusVirtualMedia"
)

// Commands returns the machine actions in DRP's order (a new slice on
// every call, so callers may keep or change it).
func Commands() []string {
	return []string{
		PowerOn, PowerOff, PowerCycle, NextBootCD, NextBootPXE, NextBootDisk,
		ForceBootPXE, ForceBootDisk, Identify, PowerStatus, Status, GetInfo,
		GetBios, GetMemory, GetStorage, GetSimpleStorage, GetProcessor,
		GetNetworkInterfaces, GetEthernetInterfaces, GetSecureBoot, GetBoot,
		MountVirtualMedia, UnmountVirtualMedia, StatusVirtualMedia,
	}
}

// IsCommand reports whether cmd is one of Commands.
func IsCommand(cmd string) bool { return slices.Contains(Commands(), cmd) }

// IsBootCommand reports whether cmd sets the next/persistent boot device
// (the actions that need detected-bios-mode).
func IsBootCommand(cmd string) bool {
	switch cmd {
	case NextBootCD, NextBootPXE, NextBootDisk, ForceBootPXE, ForceBootDisk:
		return true
	}
	return false
}

// Target says how to reach one BMC. Password is never logged or printed:
// Target implements slog.LogValuer and fmt.Stringer without it.
type Target struct {
	// Address is the BMC host name or IP.
	Address string
	// Port is the BMC port; 0 means the driver's standard port.
	Port int
	// Username and Password are the BMC credentials.
	Username, Password string
	// LAN15 asks IPMI drivers for an IPMI v1.5 LAN session instead of RMCP+.
	LAN15 bool
}

// HostPort joins Address with Port, or with def when Port is 0 (just
// Address when both are 0).
func (t Target) HostPort(def int) string {
	p := t.Port
	if p == 0 {
		p = def
	}
	if p == 0 {
		return t.Address
	}
	return net.JoinHostPort(t.Address, strconv.Itoa(p))
}

// String describes the target without its password.
func (t Target) String() string {
	return fmt.Sprintf("%s@%s", t.Username, t.HostPort(0))
}

// LogValue implements slog.LogValuer so the password never reaches a log.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("address", t.Address), slog.Int("port", t.Port), slog.String("username", t.Username))
}

// Request is one machine action with its parameters validated.
type Request struct {
	// Command is one of Commands.
	Command string
	// Mode is the ipmi/mode that selected the driver.
	Mode string
	// Target is the BMC.
	Target Target
	// BIOSMode is detected-bios-mode: "uefi" or "legacy".
	BIOSMode string
	// IdentifySeconds is how long identify blinks; <= 0 means indefinitely.
	IdentifySeconds int
	// LparID is ipmi/lpar-id (lpar mode).
	LparID string
	// VirtualMediaURL is the ISO mountVirtualMedia inserts.
	VirtualMediaURL string
	// VirtualMediaBoot makes the machine boot once from that media.
	VirtualMediaBoot bool
}

// UEFI reports whether the machine boots in UEFI mode.
func (r *Request) UEFI() bool { return r.BIOSMode == "uefi" }

// Driver runs machine actions against one kind of BMC interface.
type Driver interface {
	// Mode is the ipmi/mode value the driver serves.
	Mode() string
	// Do runs req.Command; ctx bounds the whole action.
	Do(ctx context.Context, req *Request) (any, *models.Error)
}

// PowerState is the structured answer of powerstatus.
type PowerState struct {
	// Power is "on", "off" or "unknown".
	Power string `json:"power"`
	// Raw is what the BMC said, e.g. "Chassis Power is on" or "On".
	Raw string `json:"raw"`
}

// Error builds the plugin's error shape {Model:"plugin", Key:"ipmi", Type:"rpc"}.
func Error(code int, format string, args ...any) *models.Error {
	e := &models.Error{Model: "plugin", Key: "ipmi", Type: "rpc", Code: code}
	e.Errorf(format, args...)
	return e
}

// BadParam is a 400: the caller must fix a parameter.
func BadParam(format string, args ...any) *models.Error {
	return Error(400, format, args...)
}

// NotImplemented is a 501 naming the mode and the action.
func NotImplemented(mode, cmd, why string) *models.Error {
	if why != "" {
		return Error(501, "action %s is not implemented by ipmi/mode %s: %s", cmd, mode, why)
	}
	return Error(501, "action %s is not implemented by ipmi/mode %s", cmd, mode)
}

// Unauthorized is a 401: the BMC refused the credentials.
func Unauthorized(t Target, detail string) *models.Error {
	return Error(401, "BMC %s refused the credentials of user %q: %s", t.HostPort(0), t.Username, detail)
}

// NoAnswer is a 504: the BMC did not answer in time.
func NoAnswer(t Target, detail string) *models.Error {
	return Error(504, "BMC %s did not answer: %s", t.HostPort(0), detail)
}

// BMCFailed is a 502: the BMC answered with an error.
func BMCFailed(t Target, detail string) *models.Error {
	return Error(502, "BMC %s answered an error: %s", t.HostPort(0), detail)
}
