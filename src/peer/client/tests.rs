//! Scripted state-machine tests of the client.
