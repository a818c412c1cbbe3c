"""The HTTP app: the FastAPI factory (`app`), its routes (`routes/`), their bodies (`schemas`)
and shared dependencies (`deps`), the one search path every route searches through
(`searching`), the links to the original files (`sources`), the middleware, the one place an
exception becomes a response (`error_handlers`), `athenaeum serve`'s connection (`protocol`)
and the OpenAPI document of a ChatGPT action (`gpt_action`)."""
