// Package slackplugin is the logic of the slack plugin provider: it posts
// provision events chosen by the operator (param slack/events) and messages
// from workflows (system action slack-notify) to Slack, either to an incoming
// webhook (slack/webhook-url) or with a bot token (slack/bot-key) and a
// channel (slack/channel) through chat.postMessage.
//
// It keeps DRP's provider name and the slack/bot-key param but replaces the
// retired RTM / channels.list / groups.list APIs with chat.postMessage, and
// DRP's synchronous "every event" HasPublish delivery with SelectEvents plus
// a bounded queue: Publish only renders and enqueues, one worker delivers
// with retries, exponential backoff and Slack's Retry-After on 429.
package slackplugin
