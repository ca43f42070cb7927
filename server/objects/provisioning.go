package objects

import (
	"errors"
	"fmt"
	"strings"

	"github.com/provisionhq/provision/models"
)

// The provisioning kinds (stages, tasks, templates, workflows, bootenvs)
// hold what content packs ship. Their checks are DRP's syntax checks;
// like DRP, references to other objects (a stage's tasks, a workflow's
// stages) are not required to exist, so content can load in any order.

func commonIndexes(extra map[string]models.Index) map[string]models.Index {
	idx := map[string]models.Index{"Description": str(false), "Bundle": str(false), "ReadOnly": boolIndex(),
		"Available": boolIndex(), "Validated": boolIndex()}
	for k, v := range extra {
		idx[k] = v
	}
	return idx
}

func checkParamNames(what string, names []string) error {
	for _, n := range names {
		if !models.ParamNameRE.MatchString(n) {
			return fmt.Errorf("Invalid %s `%s`", what, n)
		}
	}
	return nil
}

func checkNames(what string, names []string) error {
	for _, n := range names {
		if err := checkName(what, n); err != nil {
			return err
		}
	}
	return nil
}

// checkTemplates applies DRP's TemplateInfo sanity checks.
func checkTemplates(ts []models.TemplateInfo) error {
	seen := map[string]int{}
	for i, t := range ts {
		if t.Name == "" {
			return fmt.Errorf("Template[%d] is missing a Name", i)
		}
		if t.Contents == "" && t.ID == "" && t.Link == "" {
			return fmt.Errorf("Template[%d] must have either an ID, a Link, or Contents set", i)
		}
		if t.Contents != "" && t.ID != "" {
			return fmt.Errorf("Template[%d] has both an ID and Contents", i)
		}
		if j, dup := seen[t.Name]; dup {
			return fmt.Errorf("Template %d and %d have the same name %s", i, j, t.Name)
		}
		seen[t.Name] = i
	}
	return nil
}

// checkStageTasks accepts task names, action:<plugin>:<command> and
// chroot:<path> entries, as DRP does.
func checkStageTasks(tasks []string) error {
	for _, t := range tasks {
		kind, rest, found := strings.Cut(t, ":")
		switch {
		case !found:
			if err := checkName("Task", t); err != nil {
				return err
			}
		case kind == "action":
			plugin, cmd, ok := strings.Cut(rest, ":")
			if !ok {
				return fmt.Errorf("Invalid action specifier %s: want action:<plugin>:<command>", rest)
			}
			if err := checkName("Plugin", plugin); err != nil {
				return err
			}
			if err := checkName("Action", cmd); err != nil {
				return err
			}
		case kind == "chroot":
		default:
			return fmt.Errorf("Invalid Task: %s", t)
		}
	}
	return nil
}

// TasksKind is the tasks collection.
func TasksKind() Kind {
	return Kind{
		Prefix: "tasks", KeyField: "Name",
		New:     func() models.Model { return &models.Task{} },
		Indexes: commonIndexes(map[string]models.Index{"Name": str(true)}),
		Validate: func(v View, obj models.Model) error {
			t := obj.(*models.Task)
			if err := checkName("Name", t.Name); err != nil {
				return err
			}
			if err := checkParamNames("Required Param", t.RequiredParams); err != nil {
				return err
			}
			if err := checkParamNames("Optional Param", t.OptionalParams); err != nil {
				return err
			}
			if err := checkNames("Prerequisite", t.Prerequisites); err != nil {
				return err
			}
			return checkTemplates(t.Templates)
		},
	}
}

// StagesKind is the stages collection (stages carry params).
func StagesKind() Kind {
	return Kind{
		Prefix: "stages", KeyField: "Name",
		New: func() models.Model { return &models.Stage{} },
		Indexes: commonIndexes(map[string]models.Index{"Name": str(true), "BootEnv": str(false),
			"Reboot": boolIndex(), "RunnerWait": boolIndex()}),
		Validate: func(v View, obj models.Model) error {
			s := obj.(*models.Stage)
			if err := checkName("Name", s.Name); err != nil {
				return err
			}
			if s.BootEnv != "" {
				if err := checkName("BootEnv", s.BootEnv); err != nil {
					return err
				}
			}
			if err := checkParamNames("Required Param", s.RequiredParams); err != nil {
				return err
			}
			if err := checkParamNames("Optional Param", s.OptionalParams); err != nil {
				return err
			}
			if err := checkNames("Profile", s.Profiles); err != nil {
				return err
			}
			if err := checkStageTasks(s.Tasks); err != nil {
				return err
			}
			return checkTemplates(s.Templates)
		},
	}
}

// TemplatesKind is the templates collection, keyed by ID.
func TemplatesKind() Kind {
	return Kind{
		Prefix: "templates", KeyField: "ID",
		New:     func() models.Model { return &models.Template{} },
		Indexes: commonIndexes(map[string]models.Index{"ID": str(true)}),
		Validate: func(v View, obj models.Model) error {
			if strings.TrimSpace(obj.(*models.Template).ID) == "" {
				return errors.New("ID must not be empty")
			}
			return nil
		},
	}
}

// WorkflowsKind is the workflows collection.
func WorkflowsKind() Kind {
	return Kind{
		Prefix: "workflows", KeyField: "Name",
		New:     func() models.Model { return &models.Workflow{} },
		Indexes: commonIndexes(map[string]models.Index{"Name": str(true)}),
		Validate: func(v View, obj models.Model) error {
			w := obj.(*models.Workflow)
			if err := checkName("Name", w.Name); err != nil {
				return err
			}
			return checkNames("Stage Name", w.Stages)
		},
	}
}

// BootEnvsKind is the bootenvs collection.
func BootEnvsKind() Kind {
	return Kind{
		Prefix: "bootenvs", KeyField: "Name",
		New:     func() models.Model { return &models.BootEnv{} },
		Indexes: commonIndexes(map[string]models.Index{"Name": str(true), "OnlyUnknown": boolIndex()}),
		Validate: func(v View, obj models.Model) error {
			b := obj.(*models.BootEnv)
			if err := checkName("Name", b.Name); err != nil {
				return err
			}
			if err := checkParamNames("Required Param", b.RequiredParams); err != nil {
				return err
			}
			if err := checkParamNames("Optional Param", b.OptionalParams); err != nil {
				return err
			}
			return checkTemplates(b.Templates)
		},
	}
}

// ProvisioningKinds returns the stages, tasks, templates, workflows and
// bootenvs kinds.
func ProvisioningKinds() []Kind {
	return []Kind{StagesKind(), TasksKind(), TemplatesKind(), WorkflowsKind(), BootEnvsKind()}
}
