package ecstest

// The ECS JSON 1.1 wire shapes this server reads and writes (the subset of
// RunTask, DescribeTasks, ListTasks and StopTask the pipeline uses).

type kvPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type containerOverride struct {
	Name        string   `json:"name"`
	Command     []string `json:"command,omitempty"`
	Environment []kvPair `json:"environment,omitempty"`
}

type taskOverride struct {
	ContainerOverrides []containerOverride `json:"containerOverrides,omitempty"`
}

type strategyItem struct {
	CapacityProvider string `json:"capacityProvider"`
	Weight           int    `json:"weight,omitempty"`
	Base             int    `json:"base,omitempty"`
}

type awsvpc struct {
	Subnets        []string `json:"subnets"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	AssignPublicIP string   `json:"assignPublicIp,omitempty"`
}

type networkConfiguration struct {
	AwsvpcConfiguration *awsvpc `json:"awsvpcConfiguration,omitempty"`
}

// RunTaskRequest is the RunTask request as received (exported so that
// failure rules can match on it).
type RunTaskRequest struct {
	Cluster                  string                `json:"cluster"`
	TaskDefinition           string                `json:"taskDefinition"`
	Count                    int                   `json:"count"`
	StartedBy                string                `json:"startedBy"`
	Group                    string                `json:"group"`
	LaunchType               string                `json:"launchType"`
	CapacityProviderStrategy []strategyItem        `json:"capacityProviderStrategy"`
	NetworkConfiguration     *networkConfiguration `json:"networkConfiguration"`
	Overrides                *taskOverride         `json:"overrides"`
	Tags                     []tag                 `json:"tags"`
	PlatformVersion          string                `json:"platformVersion"`
	PropagateTags            string                `json:"propagateTags"`
	ClientToken              string                `json:"clientToken"`
}

// Provider is the capacity provider the request asks for first (FARGATE
// when it names a launch type or nothing).
func (r RunTaskRequest) Provider() string {
	for _, s := range r.CapacityProviderStrategy {
		if s.Weight > 0 || s.Base > 0 {
			return s.CapacityProvider
		}
	}
	if len(r.CapacityProviderStrategy) > 0 {
		return r.CapacityProviderStrategy[0].CapacityProvider
	}
	return "FARGATE"
}

type listTasksRequest struct {
	Cluster       string `json:"cluster"`
	Family        string `json:"family"`
	StartedBy     string `json:"startedBy"`
	DesiredStatus string `json:"desiredStatus"`
	LaunchType    string `json:"launchType"`
	MaxResults    int    `json:"maxResults"`
	NextToken     string `json:"nextToken"`
}

type describeTasksRequest struct {
	Cluster string   `json:"cluster"`
	Tasks   []string `json:"tasks"`
	Include []string `json:"include"`
}

type stopTaskRequest struct {
	Cluster string `json:"cluster"`
	Task    string `json:"task"`
	Reason  string `json:"reason"`
}

type wireContainer struct {
	ContainerArn string `json:"containerArn"`
	TaskArn      string `json:"taskArn"`
	Name         string `json:"name"`
	LastStatus   string `json:"lastStatus"`
	ExitCode     *int   `json:"exitCode,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

type wireTask struct {
	TaskArn              string          `json:"taskArn"`
	ClusterArn           string          `json:"clusterArn"`
	TaskDefinitionArn    string          `json:"taskDefinitionArn"`
	LastStatus           string          `json:"lastStatus"`
	DesiredStatus        string          `json:"desiredStatus"`
	LaunchType           string          `json:"launchType"`
	CapacityProviderName string          `json:"capacityProviderName,omitempty"`
	PlatformVersion      string          `json:"platformVersion,omitempty"`
	StartedBy            string          `json:"startedBy,omitempty"`
	Group                string          `json:"group,omitempty"`
	CreatedAt            float64         `json:"createdAt"`
	StartedAt            float64         `json:"startedAt,omitempty"`
	StoppingAt           float64         `json:"stoppingAt,omitempty"`
	StoppedAt            float64         `json:"stoppedAt,omitempty"`
	StopCode             string          `json:"stopCode,omitempty"`
	StoppedReason        string          `json:"stoppedReason,omitempty"`
	Overrides            taskOverride    `json:"overrides"`
	Containers           []wireContainer `json:"containers"`
	Tags                 []tag           `json:"tags,omitempty"`
	Version              int64           `json:"version"`
}

type failure struct {
	Arn    string `json:"arn,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}
