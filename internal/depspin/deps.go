// Package depspin imports every third-party package the project uses so that
// go.mod and go.sum pin them while the code that uses them is written. It is
// removed once every dependency has a real user.
package depspin

import (
	_ "github.com/VictorLowther/jsonpatch2"
	_ "github.com/bougou/go-ipmi/pkg/bmc"
	_ "github.com/bougou/go-ipmi/pkg/client"
	_ "github.com/bougou/go-ipmi/pkg/server"
	_ "github.com/coder/websocket"
	_ "github.com/equinix/equinix-sdk-go/services/metalv1"
	_ "github.com/gin-gonic/gin"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/uuid"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/slacktest"
	_ "github.com/spf13/cobra"
	_ "github.com/stmcginnis/gofish"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/crypto/nacl/box"
	_ "gopkg.in/yaml.v3"
)
