// Package models holds the wire types of the provision API. Their JSON field
// names match Digital Rebar Provision v4 exactly (Go field names, no tags
// unless DRP has them), so that DRP's own clients and plugins interoperate
// with provisiond unchanged.
package models
