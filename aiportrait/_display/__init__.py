"""What people see while waiting: job displays, progress, the batch bar."""
