// Package pod is a pod's request for a sandbox: the fields of CRI's
// PodSandboxConfig that matter on Linux (Config), and their decoding from
// crictl's pod config files (Decode, Load).
//
// The JSON (and YAML) form uses CRI's snake_case field names and enum
// values, so a file written for `crictl runp` decodes unchanged; enums also
// accept their names ("NODE", "RuntimeDefault", "UDP"). Decoding is strict:
// an unknown field, a duplicate key, a value of the wrong type or a second
// YAML document is a *DecodeError naming the field's path
// ("port_mappings[1].container_port"). The shape of the input is bounded
// before any parser sees it, so a hostile file costs time and memory linear
// in its size and never more than tens of ms and MB.
//
// What it is not for: it does not validate a config (names, limits,
// sysctls, paths): sandbox's Builder.Plan does, with every problem at once.
// It does not read CRI's protobuf messages; a CRI shim converts them field
// by field. It touches nothing on the host except the file Load reads.
package pod
