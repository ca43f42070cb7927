package slackplugin

import "io/fs"

func fsReadFile(name string) ([]byte, error) { return fs.ReadFile(Content(), name) }
