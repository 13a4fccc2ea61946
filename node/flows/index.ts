// Workflows: fork-join DAGs of agent steps, each step a task placed through the hive's normal
// auction, run and kept durably on the device that submitted them. Uses placement, the task
// archive and the agent store through the narrow ports in engine.ts; node/ wires it.

export { FLOW_LIMITS } from './limits.ts'
export { AgentNotFoundError, FlowAlreadyEndedError, FlowNotFoundError, FlowsNotRunningError, InvalidWorkflowError, TooManyFlowsError } from './errors.ts'
export { STEP_NAME_PATTERN, WorkflowSchema, checkForkArray, classifyAgent, parseTemplate, parseWorkflow, parseWorkflowText, planWorkflow, renderTemplate, workflowJsonSchema } from './definition.ts'
export type { AgentRef, Expression, Plan, PlannedStep, Step, Template, TemplateValues, Workflow } from './definition.ts'
export { createFlows, isFlowId } from './engine.ts'
export type {
  Attempt, FlowExplanation, FlowPlacement, FlowStatus, FlowStepExplanation, FlowStepView, FlowUnitView, FlowView, Flows, FlowsComponents, RunRequest, UnitStatus
} from './engine.ts'
