"""What chat answers with: the retrieval model's answer (`retrieval`), the generating model's
prompt (`prompt`) and its client (`llm`), and what a follow-up retrieves (`followup`). The
route and its wire format stay in the HTTP app (athenaeum.server.http.routes.chat)."""
