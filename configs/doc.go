// Package configs holds cotd's configuration: the typed Config struct, its
// embedded defaults (cotd.toml in this directory, which doubles as the
// documented example), strict TOML decoding and validation.
//
// Loading order is fixed: embedded defaults, then the operator's file decoded
// strictly on top (an unknown key is an error naming it), then Validate, which
// reports every problem at once. All of it happens before any socket opens.
package configs
