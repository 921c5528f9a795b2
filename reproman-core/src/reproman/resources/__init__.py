"""Resources (where work runs), their sessions (how we talk to them) and the inventory."""
