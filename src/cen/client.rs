//! The CEN API client (see issue 2).
