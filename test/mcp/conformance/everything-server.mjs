/**
 * A stdio MCP server with the fixtures the MCP conformance suite's server scenarios call by name
 * (`test_simple_text`, `test_simple_prompt`, `test://static-text`, ...), as the suite's own
 * "everything" server has them. test/mcp/conformance-server.test.ts mounts it in Caxton with
 * `[mcp_servers.everything] gateway = true` and runs the suite against Caxton's /mcp, so the
 * scenarios exercise Caxton's gateway: names, results, progress, prompts, resources, completions.
 * Written on the SDK's low-level Server so every answer is exactly what the scenario describes.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

/** A 1x1 red PNG and a WAV header with no samples: the smallest valid image and audio. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=';
const NO_ARGS = { type: 'object', properties: {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tools = [
  // Not a conformance fixture: Caxton's built-in of the same name must win it (test/mcp/gateway.test.ts).
  {
    name: 'calculator',
    description: "The fixture's calculator (shadowed)",
    inputSchema: { type: 'object', properties: { expression: { type: 'string' } } },
  },
  { name: 'test_simple_text', description: 'Returns simple text', inputSchema: NO_ARGS },
  { name: 'test_image_content', description: 'Returns an image', inputSchema: NO_ARGS },
  { name: 'test_audio_content', description: 'Returns audio', inputSchema: NO_ARGS },
  { name: 'test_embedded_resource', description: 'Returns an embedded resource', inputSchema: NO_ARGS },
  { name: 'test_multiple_content_types', description: 'Returns text, an image and a resource', inputSchema: NO_ARGS },
  { name: 'test_tool_with_logging', description: 'Logs while it runs', inputSchema: NO_ARGS },
  { name: 'test_error_handling', description: 'Always fails', inputSchema: NO_ARGS },
  { name: 'test_tool_with_progress', description: 'Reports progress', inputSchema: NO_ARGS },
  {
    name: 'test_sampling',
    description: "Asks the client's model",
    inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
  },
  {
    name: 'test_elicitation',
    description: "Asks the client's user",
    inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
  },
  {
    name: 'test_elicitation_sep1034_defaults',
    description: "Asks the client's user, with defaults",
    inputSchema: NO_ARGS,
  },
  { name: 'test_elicitation_sep1330_enums', description: "Asks the client's user, with enums", inputSchema: NO_ARGS },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
  },
];

const server = new Server(
  { name: 'conformance-everything', version: '1.0.0' },
  { capabilities: { tools: {}, prompts: {}, resources: {}, logging: {}, completions: {} } },
);

server.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
  const { name, arguments: args = {} } = req.params;
  const text = (t) => ({ type: 'text', text: t });
  switch (name) {
    case 'calculator':
      return { content: [text('the fixture calculator answered')] };
    case 'test_simple_text':
      return { content: [text('This is a simple text response for testing.')] };
    case 'test_image_content':
      return { content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] };
    case 'test_audio_content':
      return { content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] };
    case 'test_embedded_resource':
      return {
        content: [
          {
            type: 'resource',
            resource: {
              uri: 'test://embedded-resource',
              mimeType: 'text/plain',
              text: 'This is an embedded resource content.',
            },
          },
        ],
      };
    case 'test_multiple_content_types':
      return {
        content: [
          text('Multiple content types test:'),
          { type: 'image', data: PNG, mimeType: 'image/png' },
          {
            type: 'resource',
            resource: {
              uri: 'test://mixed-content-resource',
              mimeType: 'application/json',
              text: '{"test":"data","value":123}',
            },
          },
        ],
      };
    case 'test_tool_with_logging':
      for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data } });
        await sleep(50);
      }
      return { content: [text('Tool with logging executed successfully')] };
    case 'test_error_handling':
      return { content: [text('This tool intentionally returns an error for testing')], isError: true };
    case 'test_tool_with_progress': {
      const token = req.params._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (token !== undefined)
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress, total: 100 },
          });
        await sleep(50);
      }
      return { content: [text(String(token ?? 'no token'))] };
    }
    case 'test_sampling': {
      const r = await server.createMessage({
        messages: [{ role: 'user', content: text(String(args.prompt)) }],
        maxTokens: 100,
      });
      return { content: [text(`LLM response: ${r.content.type === 'text' ? r.content.text : r.content.type}`)] };
    }
    case 'test_elicitation':
    case 'test_elicitation_sep1034_defaults':
    case 'test_elicitation_sep1330_enums': {
      const r = await server.elicitInput({
        message: String(args.message ?? 'Please provide input'),
        requestedSchema: { type: 'object', properties: { name: { type: 'string', default: 'John Doe' } } },
      });
      return { content: [text(`User response: ${JSON.stringify(r)}`)] };
    }
    case 'json_schema_2020_12_tool':
      return { content: [text(JSON.stringify(args))] };
    default:
      throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
  }
});

const prompts = [
  { name: 'test_simple_prompt', description: 'A simple prompt' },
  {
    name: 'test_prompt_with_arguments',
    description: 'A prompt with arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt with a resource',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
  },
  { name: 'test_prompt_with_image', description: 'A prompt with an image' },
];
server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts }));
server.setRequestHandler(GetPromptRequestSchema, (req) => {
  const a = req.params.arguments ?? {};
  const user = (content) => ({ role: 'user', content });
  switch (req.params.name) {
    case 'test_simple_prompt':
      return { messages: [user({ type: 'text', text: 'This is a simple prompt for testing.' })] };
    case 'test_prompt_with_arguments':
      return { messages: [user({ type: 'text', text: `Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'` })] };
    case 'test_prompt_with_embedded_resource':
      return {
        messages: [
          user({
            type: 'resource',
            resource: { uri: a.resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
          }),
          user({ type: 'text', text: 'Please process the embedded resource above.' }),
        ],
      };
    case 'test_prompt_with_image':
      return {
        messages: [
          user({ type: 'image', data: PNG, mimeType: 'image/png' }),
          user({ type: 'text', text: 'Please analyze the image above.' }),
        ],
      };
    default:
      throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${req.params.name}`);
  }
});

const resources = [
  { uri: 'test://static-text', name: 'static-text', description: 'A static text resource', mimeType: 'text/plain' },
  {
    uri: 'test://static-binary',
    name: 'static-binary',
    description: 'A static binary resource',
    mimeType: 'image/png',
  },
  {
    uri: 'test://watched-resource',
    name: 'watched-resource',
    description: 'A resource that changes',
    mimeType: 'text/plain',
  },
];
server.setRequestHandler(ListResourcesRequestSchema, () => ({ resources }));
server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
  resourceTemplates: [
    {
      uriTemplate: 'test://template/{id}/data',
      name: 'template-data',
      description: 'Data for an id',
      mimeType: 'application/json',
    },
  ],
}));
server.setRequestHandler(ReadResourceRequestSchema, (req) => {
  const { uri } = req.params;
  if (uri === 'test://static-text')
    return { contents: [{ uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] };
  if (uri === 'test://static-binary') return { contents: [{ uri, mimeType: 'image/png', blob: PNG }] };
  if (uri === 'test://watched-resource')
    return { contents: [{ uri, mimeType: 'text/plain', text: 'Watched resource content' }] };
  const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
  if (m)
    return {
      contents: [
        {
          uri,
          mimeType: 'application/json',
          text: JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` }),
        },
      ],
    };
  throw new McpError(-32002, `Resource not found: ${uri}`, { uri });
});
server.setRequestHandler(CompleteRequestSchema, () => ({
  completion: { values: ['test-completion'], total: 1, hasMore: false },
}));

await server.connect(new StdioServerTransport());
