"""The event-sourced application: ``ConversationApp`` (commands and queries), the store
wiring, and the conversation listing (read model) that follows the notification log."""
