// Package pluginutil holds the helpers the bundled plugins share, the
// equivalent of DRP provision-plugins' utils package: the plugin error
// shape (MakeError, ConvertError), typed param getters that accept the
// float64 numbers JSON decoding produces, DRP REST helpers written against
// the small API interface that *client.Client satisfies. The §5.8 event
// filter is models.EventFilter, shared with the server.
//
// Unlike DRP's utils there is no package-level plugin name (SetErrorName):
// callers pass the error key explicitly, so two plugin instances in one
// process, or parallel tests, cannot overwrite each other's name.
package pluginutil
