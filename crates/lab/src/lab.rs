//! Wiring: starts every simulated endpoint of a scenario and hands out their addresses and credentials.
