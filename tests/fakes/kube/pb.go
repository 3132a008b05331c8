package kube

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Request bodies in the Kubernetes protobuf encoding, which kubectl's typed
// commands (create secret/configmap/namespace/serviceaccount/token) send.
// Only decoding, and only the types those commands send; answers are JSON
// (kubectl's Accept also lists application/json).

const ctProtobuf = "application/vnd.kubernetes.protobuf"

var pbMagic = []byte("k8s\x00")

type pbField struct {
	name     string
	kind     string // string, bytes, int64, bool, msg, map_ss, map_sb, time
	msg      pbMsg
	repeated bool
}

type pbMsg map[int]pbField

var (
	pbTime       = pbMsg{}
	pbOwnerRef   = pbMsg{1: {name: "kind", kind: "string"}, 2: {name: "name", kind: "string"}, 3: {name: "uid", kind: "string"}, 4: {name: "controller", kind: "bool"}, 5: {name: "apiVersion", kind: "string"}, 7: {name: "blockOwnerDeletion", kind: "bool"}}
	pbObjectRef  = pbMsg{1: {name: "kind", kind: "string"}, 2: {name: "namespace", kind: "string"}, 3: {name: "name", kind: "string"}, 4: {name: "uid", kind: "string"}, 5: {name: "apiVersion", kind: "string"}, 6: {name: "resourceVersion", kind: "string"}, 7: {name: "fieldPath", kind: "string"}}
	pbObjectMeta = pbMsg{
		1: {name: "name", kind: "string"}, 2: {name: "generateName", kind: "string"}, 3: {name: "namespace", kind: "string"},
		4: {name: "selfLink", kind: "string"}, 5: {name: "uid", kind: "string"}, 6: {name: "resourceVersion", kind: "string"},
		7: {name: "generation", kind: "int64"}, 8: {name: "creationTimestamp", kind: "time"}, 9: {name: "deletionTimestamp", kind: "time"},
		10: {name: "deletionGracePeriodSeconds", kind: "int64"}, 11: {name: "labels", kind: "map_ss"}, 12: {name: "annotations", kind: "map_ss"},
		13: {name: "ownerReferences", kind: "msg", msg: pbOwnerRef, repeated: true}, 14: {name: "finalizers", kind: "string", repeated: true},
	}
	pbTypes = map[string]pbMsg{
		"v1/Secret": {1: {name: "metadata", kind: "msg", msg: pbObjectMeta}, 2: {name: "data", kind: "map_sb"}, 3: {name: "type", kind: "string"},
			4: {name: "stringData", kind: "map_ss"}, 5: {name: "immutable", kind: "bool"}},
		"v1/ConfigMap": {1: {name: "metadata", kind: "msg", msg: pbObjectMeta}, 2: {name: "data", kind: "map_ss"}, 3: {name: "binaryData", kind: "map_sb"},
			4: {name: "immutable", kind: "bool"}},
		"v1/Namespace": {1: {name: "metadata", kind: "msg", msg: pbObjectMeta}, 2: {name: "spec", kind: "msg", msg: pbMsg{1: {name: "finalizers", kind: "string", repeated: true}}}},
		"v1/ServiceAccount": {1: {name: "metadata", kind: "msg", msg: pbObjectMeta}, 2: {name: "secrets", kind: "msg", msg: pbObjectRef, repeated: true},
			3: {name: "imagePullSecrets", kind: "msg", msg: pbMsg{1: {name: "name", kind: "string"}}, repeated: true}, 4: {name: "automountServiceAccountToken", kind: "bool"}},
		"authentication.k8s.io/v1/TokenRequest": {1: {name: "metadata", kind: "msg", msg: pbObjectMeta}, 2: {name: "spec", kind: "msg", msg: pbMsg{
			1: {name: "audiences", kind: "string", repeated: true}, 4: {name: "expirationSeconds", kind: "int64"},
			3: {name: "boundObjectRef", kind: "msg", msg: pbMsg{1: {name: "kind", kind: "string"}, 2: {name: "apiVersion", kind: "string"}, 3: {name: "name", kind: "string"}, 4: {name: "uid", kind: "string"}}}}}},
		"meta.k8s.io/v1/DeleteOptions": {1: {name: "gracePeriodSeconds", kind: "int64"}, 2: {name: "preconditions", kind: "msg", msg: pbMsg{1: {name: "uid", kind: "string"}, 2: {name: "resourceVersion", kind: "string"}}},
			3: {name: "orphanDependents", kind: "bool"}, 4: {name: "propagationPolicy", kind: "string"}, 5: {name: "dryRun", kind: "string", repeated: true}},
		"v1/DeleteOptions": {1: {name: "gracePeriodSeconds", kind: "int64"}, 2: {name: "preconditions", kind: "msg", msg: pbMsg{1: {name: "uid", kind: "string"}, 2: {name: "resourceVersion", kind: "string"}}},
			3: {name: "orphanDependents", kind: "bool"}, 4: {name: "propagationPolicy", kind: "string"}, 5: {name: "dryRun", kind: "string", repeated: true}},
	}
)

type pbReader struct {
	b []byte
	i int
}

func (r *pbReader) varint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		return 0, errors.New("proto: bad varint")
	}
	r.i += n
	return v, nil
}

func (r *pbReader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if uint64(len(r.b)-r.i) < n {
		return nil, errors.New("proto: unexpected EOF")
	}
	b := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return b, nil
}

// pbFields reads every (field number, wire type, value) of a message.
func pbFields(b []byte, fn func(num int, wt int, v uint64, data []byte) error) error {
	r := &pbReader{b: b}
	for r.i < len(r.b) {
		tag, err := r.varint()
		if err != nil {
			return err
		}
		num, wt := int(tag>>3), int(tag&7)
		switch wt {
		case 0:
			v, err := r.varint()
			if err != nil {
				return err
			}
			if err := fn(num, wt, v, nil); err != nil {
				return err
			}
		case 1:
			if r.i+8 > len(r.b) {
				return errors.New("proto: unexpected EOF")
			}
			r.i += 8
		case 5:
			if r.i+4 > len(r.b) {
				return errors.New("proto: unexpected EOF")
			}
			r.i += 4
		case 2:
			d, err := r.bytes()
			if err != nil {
				return err
			}
			if err := fn(num, wt, 0, d); err != nil {
				return err
			}
		default:
			return fmt.Errorf("proto: unsupported wire type %d", wt)
		}
	}
	return nil
}

func pbDecode(b []byte, m pbMsg) (Obj, error) {
	out := Obj{}
	err := pbFields(b, func(num, wt int, v uint64, data []byte) error {
		f, ok := m[num]
		if !ok {
			return nil
		}
		var val any
		switch f.kind {
		case "string":
			if len(data) == 0 && !f.repeated {
				return nil // proto2 always sends strings; empty means unset (omitempty)
			}
			val = string(data)
		case "bytes":
			val = base64.StdEncoding.EncodeToString(data)
		case "int64":
			if v == 0 && f.name == "generation" {
				return nil
			}
			val = normalize(int64(v))
		case "bool":
			val = v != 0
		case "time":
			var sec, nanos int64
			pbFields(data, func(n, _ int, x uint64, _ []byte) error {
				if n == 1 {
					sec = int64(x)
				} else if n == 2 {
					nanos = int64(x)
				}
				return nil
			})
			if sec == 0 && nanos == 0 {
				return nil
			}
			val = time.Unix(sec, nanos).UTC().Format(time.RFC3339)
		case "msg":
			o, err := pbDecode(data, f.msg)
			if err != nil {
				return err
			}
			val = o
		case "map_ss", "map_sb":
			var k, x string
			var xb []byte
			pbFields(data, func(n, _ int, _ uint64, d []byte) error {
				if n == 1 {
					k = string(d)
				} else if n == 2 {
					x, xb = string(d), d
				}
				return nil
			})
			mm := ensureMap(out, f.name)
			if f.kind == "map_sb" {
				mm[k] = base64.StdEncoding.EncodeToString(xb)
			} else {
				mm[k] = x
			}
			return nil
		}
		if f.repeated {
			l, _ := out[f.name].([]any)
			out[f.name] = append(l, val)
		} else {
			out[f.name] = val
		}
		return nil
	})
	return out, err
}

// decodeProtobuf unwraps the k8s envelope (magic + runtime.Unknown) and
// decodes the object into its JSON form.
func decodeProtobuf(body []byte) (Obj, error) {
	if !bytes.HasPrefix(body, pbMagic) {
		return nil, errors.New("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
	}
	var apiVersion, kind string
	var raw []byte
	err := pbFields(body[len(pbMagic):], func(num, wt int, v uint64, data []byte) error {
		switch num {
		case 1:
			pbFields(data, func(n, _ int, _ uint64, d []byte) error {
				if n == 1 {
					apiVersion = string(d)
				} else if n == 2 {
					kind = string(d)
				}
				return nil
			})
		case 2:
			raw = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m, ok := pbTypes[apiVersion+"/"+kind]
	if !ok {
		return nil, fmt.Errorf("this fake decodes protobuf only for Secret, ConfigMap, Namespace, ServiceAccount, TokenRequest and DeleteOptions, not %s %s", apiVersion, kind)
	}
	o, err := pbDecode(raw, m)
	if err != nil {
		return nil, err
	}
	o["apiVersion"] = apiVersion
	o["kind"] = kind
	return o, nil
}

// jsonBody returns the request body as JSON, converting protobuf.
func jsonBody(ct string, body []byte) ([]byte, *apiError) {
	if i := bytes.IndexByte([]byte(ct), ';'); i >= 0 {
		ct = ct[:i]
	}
	if ct != ctProtobuf {
		return body, nil
	}
	o, err := decodeProtobuf(body)
	if err != nil {
		return nil, &apiError{code: 415, reason: "UnsupportedMediaType", message: err.Error()}
	}
	return encodeJSON(o), nil
}
