-- Argo CD health for drawbridge.dev Database, AccessRole and DatabaseUser (one script for the three
-- kinds: each reports a Ready condition). Install: gitops/argocd/argocd-cm.yaml, or README (GitOps).
--   Healthy      Ready=True for the current generation
--   Progressing  no status yet, a spec change not yet observed, or Ready=Unknown (deploying, probing)
--   Suspended    a Database scaled to zero (spec.agent.replicas: 0)
--   Degraded     Ready=False: the message is the condition's, which names the fix
local hs = { status = "Progressing", message = "waiting for the Drawbridge controller" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.message = "the controller has not seen generation " .. generation .. " yet"
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    local why = (c.reason or "") .. ": " .. (c.message or "")
    if c.status == "True" then
      hs.status = "Healthy"
      hs.message = c.message or "ready"
    elseif c.reason == "AgentScaledToZero" then
      hs.status = "Suspended"
      hs.message = why
    elseif c.status == "False" then
      hs.status = "Degraded"
      hs.message = why
    else
      hs.message = why
    end
    return hs
  end
end
return hs
