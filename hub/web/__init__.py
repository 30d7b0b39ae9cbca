"""The management side: health endpoints now, the technician page (vi/en) in a later issue."""
