"""What people read: tables, plots, report.md, and the comparison across runs."""
