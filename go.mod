module github.com/podsmith/podsmith

go 1.26.0

require (
	github.com/moby/sys/mountinfo v0.7.3
	github.com/opencontainers/runtime-spec v1.2.1
	github.com/opencontainers/selinux v1.15.1
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/cyphar/filepath-securejoin v0.5.1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
