package daemon

import (
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

func fieldSelector(field, value string) fields.Selector {
	return fields.OneTermEqualSelector(field, value)
}

func labelSelector(key, value string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{key: value})
}
