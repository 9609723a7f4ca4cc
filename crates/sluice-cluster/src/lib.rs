//! `sluice-cluster`: starts and controls a throwaway local PostgreSQL cluster
//! (a primary and hot standbys on loopback ports) for tests, benches and the demo.
