//! PLACEHOLDER: sources are being written.
