package local

// Pristine is pristine, for tests.
var Pristine = pristine
