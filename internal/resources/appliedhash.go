package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// contentHash returns hashOf(content), the digest of the JSON form of an
// unstructured object's content, without encoding/json's reflection: it
// writes the bytes json.Marshal would, keys in order, and hashes them. Every
// reconcile hashes every object it builds, so this is on the hot path.
func contentHash(content map[string]any) string {
	sum := sha256.Sum256(appendJSON(make([]byte, 0, 4096), content))
	return hex.EncodeToString(sum[:])[:16]
}

// appendJSON appends the JSON form of v, a value of unstructured content, to
// b, as json.Marshal writes it. A value of another type is written by
// json.Marshal itself.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case map[string]any:
		if v == nil {
			return append(b, "null"...)
		}
		var buf [16]string
		keys := buf[:0]
		for key := range v {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, key := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, key)
			b = append(b, ':')
			b = appendJSON(b, v[key])
		}
		return append(b, '}')
	case []any:
		if v == nil {
			return append(b, "null"...)
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	default:
		return appendMarshalled(b, v)
	}
}

// appendJSONString appends s as a JSON string. A string with a character
// json.Marshal escapes (a control character, a quote, a backslash, <, >, &
// or any beyond ASCII) is written by json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return appendMarshalled(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendMarshalled(b []byte, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("failed to encode %T: %v", v, err)) // a programming error
	}
	return append(b, data...)
}
