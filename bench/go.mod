module pgtoken-rotator/bench

go 1.22

require pgtoken-rotator/tests v0.0.0

replace pgtoken-rotator/tests => ../tests
