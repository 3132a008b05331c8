module pgtoken-rotator/tests

go 1.22
