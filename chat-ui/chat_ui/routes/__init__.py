"""HTTP routes, one module per area: auth, chats, health."""
