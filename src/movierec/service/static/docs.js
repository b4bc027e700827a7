// Starts Swagger UI on /docs over the app's own OpenAPI document (no inline script: the
// page's Content-Security-Policy allows scripts from this origin only).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
