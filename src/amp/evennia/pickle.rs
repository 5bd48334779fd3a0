//! Pickle codec (placeholder; being written).
